//! A buffer pool that reuses freed storage buffers by size class and counts bytes.

use std::collections::HashMap;

/// Storage buffers every tensor gets: read/write in shaders, copy source and destination.
pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Rounds a byte count up to its size class: 3 mantissa bits (at most 12.5% waste), min 256 B.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let top = 63 - bytes.leading_zeros() as u64; // floor(log2)
    if top < 3 {
        return bytes;
    }
    let step = 1u64 << (top - 3);
    bytes.div_ceil(step) * step
}

/// Free buffers by size class plus live/peak byte counters.
#[derive(Default)]
pub(crate) struct BufferPool {
    /// Free buffers per size class, each with the stamp of its release.
    free: HashMap<u64, Vec<(u64, wgpu::Buffer)>>,
    /// Releases so far: the stamp of the last one.
    pub releases: u64,
    pub live_bytes: u64,
    /// Highest live + pooled bytes: what the device held for tensors.
    pub peak_bytes: u64,
    /// Highest live bytes.
    pub peak_live_bytes: u64,
    /// Largest buffer handed out.
    pub largest_buffer_bytes: u64,
    pub pooled_bytes: u64,
    pub allocations: u64,
    pub reuses: u64,
}

impl BufferPool {
    /// A buffer of at least `bytes`, reused when one is free: its size class, or with `exact`
    /// (data uploaded once and kept, such as weights) `bytes` rounded up to 256 only.
    pub fn acquire(
        &mut self,
        device: &wgpu::Device,
        bytes: u64,
        max_buffer: u64,
        exact: bool,
    ) -> wgpu::Buffer {
        let class = match exact {
            true => bytes.div_ceil(256) * 256,
            false => size_class(bytes),
        };
        let class = class.min(max_buffer.max(bytes));
        let buffer = match self.free.get_mut(&class).and_then(Vec::pop) {
            Some((_, buffer)) => {
                self.pooled_bytes -= class;
                self.reuses += 1;
                buffer
            }
            None => {
                self.allocations += 1;
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("tensor"),
                    size: class,
                    usage: TENSOR_USAGE,
                    mapped_at_creation: false,
                })
            }
        };
        self.live_bytes += class;
        self.largest_buffer_bytes = self.largest_buffer_bytes.max(class);
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
        self.peak_bytes = self.peak_bytes.max(self.live_bytes + self.pooled_bytes);
        buffer
    }

    /// Returns a buffer to the pool; commands already recorded that use it stay valid. A buffer
    /// of no size class (an exact one) is freed instead: nothing else would reuse it.
    pub fn release(&mut self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        self.live_bytes -= class;
        if size_class(class) != class {
            return;
        }
        self.pooled_bytes += class;
        self.releases += 1;
        let stamp = self.releases;
        self.free.entry(class).or_default().push((stamp, buffer));
    }

    /// Drops the free buffers released after release `mark` (0: all of them); the memory goes
    /// back to the driver.
    pub fn trim_since(&mut self, mark: u64) {
        let mut freed = 0;
        for (class, buffers) in self.free.iter_mut() {
            let before = buffers.len();
            buffers.retain(|(stamp, _)| *stamp <= mark);
            freed += (before - buffers.len()) as u64 * class;
        }
        self.free.retain(|_, buffers| !buffers.is_empty());
        self.pooled_bytes -= freed;
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
        assert_eq!(size_class(257), 288);
        assert_eq!(size_class(1000), 1024);
        for bytes in [300u64, 4097, 123_457, 98_765_431] {
            let c = size_class(bytes);
            assert!(c >= bytes && (c - bytes) * 8 <= c, "{bytes} -> {c}");
        }
    }
}
