//! Async readback that never blocks in the browser, and a blocking wrapper for native callers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::context::Gpu;
use crate::{Error, Result};

#[derive(Default)]
struct MapState {
    done: Option<Result<(), String>>,
    waker: Option<Waker>,
}

/// Resolves when `map_async`'s callback has fired.
struct MapFuture(Arc<Mutex<MapState>>);

impl Future for MapFuture {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match state.done.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// A callback that settles `state` with `result` and wakes its waiter.
fn settle(state: &Arc<Mutex<MapState>>) -> impl FnOnce(Result<(), String>) + Send + 'static {
    let sink = state.clone();
    move |result| {
        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
        s.done = Some(result);
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

impl Gpu {
    /// Polls the device (native: until the queue is done, firing the callbacks; a no-op on the
    /// web, where the browser fires them), then awaits `state`; `what` names a failure.
    async fn settled(&self, state: Arc<Mutex<MapState>>, what: &str) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("device poll failed: {e}")))?;
        MapFuture(state)
            .await
            .map_err(|e| Error::Gpu(format!("{what} failed: {e}")))?;
        self.take_error()
    }

    /// Submits pending work and resolves when the GPU has done everything submitted: on the
    /// web, the point between steps where a worker takes its messages (Stop) again.
    pub async fn finished(&self) -> Result<()> {
        self.flush()?;
        let state = Arc::new(Mutex::new(MapState::default()));
        let done = settle(&state);
        self.inner
            .queue
            .on_submitted_work_done(move || done(Ok(())));
        self.settled(state, "waiting for the GPU").await
    }

    /// Copies `bytes` bytes of `src` from byte `src_offset` to the host: submits pending work,
    /// maps, awaits.
    /// Native: the device is polled to completion here. Web: the browser resolves the map.
    pub(crate) async fn read_buffer(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        bytes: u64,
    ) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.div_ceil(wgpu::COPY_BUFFER_ALIGNMENT) * wgpu::COPY_BUFFER_ALIGNMENT;
        let staging = self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.copy(src, src_offset, &staging, 0, padded);
        self.flush()?;
        let state = Arc::new(Mutex::new(MapState::default()));
        let done = settle(&state);
        staging.map_async(wgpu::MapMode::Read, .., move |result| {
            done(result.map_err(|e| e.to_string()))
        });
        self.settled(state, "readback map").await?;
        let data = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("readback view failed: {e}")))?;
            view[..bytes as usize].to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Waits until the GPU has finished everything submitted (native; no-op on the web).
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("device poll failed: {e}")))?;
        self.take_error()
    }
}

/// Runs a future to completion on the current thread (native callers of the async API).
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}
