//! The GPU context: device, queue, limits, features, pool, pipelines and the recorder.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::adapter::{select_adapter, AdapterSummary, GpuOptions};
use super::pipelines::{Kernel, PipelineCache};
use super::pool::BufferPool;
use super::profile::{KernelTime, Profile};
use super::recorder::Recorder;
use super::F16Form;
use crate::{DType, Error, Result, Tensor};

/// Threads per workgroup of the kernels that run one thread per item (`Gpu::dispatch_items`).
pub const ITEM_WORKGROUP: u32 = 256;

/// Dispatches recorded before an automatic submit, bounding the encoder's size.
const MAX_PENDING_DISPATCHES: u32 = 4096;

/// Optional features requested when the adapter has them.
const OPTIONAL_FEATURES: wgpu::Features = wgpu::Features::SUBGROUP
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::SHADER_F16);

/// Counters a benchmark or test can read: submits, dispatches, bytes live and at peak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuStats {
    /// Queue submits so far.
    pub submits: u64,
    /// Compute dispatches recorded so far.
    pub dispatches: u64,
    /// Bytes of tensor buffers in use now.
    pub live_bytes: u64,
    /// Highest bytes of tensor buffers the device held (in use plus pooled) since creation or
    /// the last `reset_peak`: the memory figure to report.
    pub peak_bytes: u64,
    /// Highest `live_bytes` since creation or the last `reset_peak`.
    pub peak_live_bytes: u64,
    /// Largest storage binding a dispatch used since creation or the last `reset_peak`
    /// (bounded by `max_storage_buffer_binding_size`).
    pub largest_binding_bytes: u64,
    /// Largest tensor buffer allocated since creation or the last `reset_peak` (bounded by
    /// `max_buffer_size`).
    pub largest_buffer_bytes: u64,
    /// Bytes held free in the pool for reuse.
    pub pooled_bytes: u64,
    /// Buffers created by the pool.
    pub allocations: u64,
    /// Buffers served from the pool without allocating.
    pub reuses: u64,
}

pub(crate) struct Inner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// Shaders may call unpack2x16float (16-bit weights).
    unpacks_f16: bool,
    pub pool: Mutex<BufferPool>,
    pipelines: Mutex<PipelineCache>,
    pub recorder: Mutex<Recorder>,
    error: Arc<Mutex<Option<String>>>,
    /// Why the device was lost (set by wgpu's device-lost callback).
    lost: Arc<Mutex<Option<String>>>,
    submits: AtomicU64,
    dispatches: AtomicU64,
    largest_binding: AtomicU64,
    /// The release marks of the open `pool_phase`s, innermost last.
    phases: Mutex<Vec<u64>>,
    poison: AtomicU32,
    memory_budget: u64,
    /// Per-kernel times while profiling (`Gpu::start_profiling`).
    profile: Mutex<Option<Profile>>,
}

/// Most defines a kernel is dispatched with (matmul's five and its layout are the most).
const MAX_DEFINES: usize = 15;

/// Keeps output poisoning on until dropped (see [`Gpu::poison_outputs_guard`]).
pub struct PoisonGuard(Gpu);

impl Drop for PoisonGuard {
    fn drop(&mut self) {
        self.0.inner.poison.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A handle to one GPU device; cheap to clone, shared by every tensor made on it.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<Inner>,
    /// How kernels dispatched through this handle (and the tensors made with it) read 16-bit
    /// tensors: a property of the handle, not the device, so handles in different forms can
    /// share one device at once (the conformance checks run every form on parallel threads).
    f16_form: F16Form,
}

/// Whether an adapter runs on the CPU (lavapipe, SwiftShader, WARP).
fn is_cpu_adapter(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu || info.name.contains("SwiftShader")
}

/// The refusal of f16 arrays on a device without `SHADER_F16`.
fn no_shader_f16(adapter: &str) -> Error {
    Error::Invalid(format!(
        "16-bit tensors as f16 arrays need the SHADER_F16 feature, which {adapter} lacks; \
         use {}=packed",
        super::F16_FORM_VAR
    ))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gpu {
    /// Opens the adapter chosen by `WGPU_BACKEND` / `BITDANCE_ADAPTER` (best device type first).
    pub async fn from_env() -> Result<Self> {
        Self::new(&GpuOptions::from_env()?).await
    }

    /// Opens the best adapter matching `options`, with its own limits and optional features.
    // On the web wgpu handles are not Send; the Arc only makes clones cheap on one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub async fn new(options: &GpuOptions) -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = options.backends()?;
        let instance = wgpu::Instance::new(desc);
        let adapter = select_adapter(&instance, options).await?;
        let info = adapter.get_info();
        let mut limits = match options.webgpu_limits {
            true => wgpu::Limits::default(),
            false => adapter.limits(),
        };
        if let Some(cap) = options.max_binding_bytes {
            let binding = &mut limits.max_storage_buffer_binding_size;
            *binding = (*binding).min(cap);
        }
        let unpacks_f16 = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::SHADER_F16_IN_F32);
        let mut wanted = adapter.features() & OPTIONAL_FEATURES;
        if options.no_subgroups {
            wanted.remove(wgpu::Features::SUBGROUP);
        }
        let request = |features: wgpu::Features| wgpu::DeviceDescriptor {
            label: Some("bitdance"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue, features) = match adapter.request_device(&request(wanted)).await {
            Ok((d, q)) => (d, q, wanted),
            Err(first) => match adapter
                .request_device(&request(wgpu::Features::empty()))
                .await
            {
                Ok((d, q)) => {
                    log::warn!("optional features {wanted:?} refused ({first}); running without");
                    (d, q, wgpu::Features::empty())
                }
                Err(e) => {
                    return Err(Error::DeviceRequest {
                        adapter: info.name.clone(),
                        reason: e.to_string(),
                    })
                }
            },
        };
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = lock(&sink);
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None::<String>));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lock(&lost_sink) = Some(format!("{reason:?}: {message}"));
        });
        let has_shader_f16 = features.contains(wgpu::Features::SHADER_F16);
        let is_cpu = is_cpu_adapter(&info);
        let f16_form = options
            .f16_form
            .unwrap_or(F16Form::default_for(has_shader_f16, is_cpu));
        if f16_form == F16Form::Arrays && !has_shader_f16 {
            return Err(no_shader_f16(&info.name));
        }
        let align = limits.min_uniform_buffer_offset_alignment;
        Ok(Self {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                features,
                unpacks_f16,
                pool: Mutex::new(BufferPool::default()),
                pipelines: Mutex::new(PipelineCache::default()),
                recorder: Mutex::new(Recorder::new(align)),
                error,
                lost,
                submits: AtomicU64::new(0),
                dispatches: AtomicU64::new(0),
                largest_binding: AtomicU64::new(0),
                phases: Mutex::new(Vec::new()),
                poison: AtomicU32::new(0),
                memory_budget: options
                    .memory_budget
                    .unwrap_or(super::adapter::DEFAULT_MEMORY_BUDGET),
                profile: Mutex::new(None),
            }),
            f16_form,
        })
    }

    /// Name, backend, device type and driver of the adapter in use.
    pub fn adapter(&self) -> AdapterSummary {
        AdapterSummary::of(&self.inner.info)
    }

    /// The raw wgpu adapter info (subgroup sizes included).
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// Refuses, with the estimate and the budget, a job whose estimated memory is above the
    /// budget this context was opened with; called before anything of the job is allocated.
    pub fn check_memory(&self, estimate: &crate::model::MemoryEstimate) -> Result<()> {
        let budget = self.inner.memory_budget;
        if estimate.bytes > budget {
            return Err(Error::Memory {
                what: estimate.what.clone(),
                parameters: estimate.parameters,
                needed: estimate.bytes,
                budget,
            });
        }
        Ok(())
    }

    /// Bytes a job may need before `check_memory` refuses it.
    pub fn memory_budget(&self) -> u64 {
        self.inner.memory_budget
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The optional features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    /// Whether shaders may use subgroup operations with subgroups of at least `lanes`
    /// invocations (never on the web, where WGSL would also need `enable subgroups`).
    pub fn has_subgroups(&self, lanes: u32) -> bool {
        !cfg!(target_arch = "wasm32")
            && self.inner.features.contains(wgpu::Features::SUBGROUP)
            && self.inner.info.subgroup_min_size >= lanes
    }

    /// Whether shaders can unpack 16-bit floats (`unpack2x16float`), as 16-bit weights need:
    /// every backend but GL.
    pub fn unpacks_f16(&self) -> bool {
        self.inner.unpacks_f16
    }

    /// Whether the device runs on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_cpu(&self) -> bool {
        is_cpu_adapter(&self.inner.info)
    }

    /// How kernels dispatched through this handle read 16-bit tensors.
    pub fn f16_form(&self) -> F16Form {
        self.f16_form
    }

    /// The forms of 16-bit reads this device can run: packed, and arrays with `SHADER_F16`.
    pub fn f16_forms(&self) -> Vec<F16Form> {
        let mut forms = vec![F16Form::Packed];
        if self.inner.features.contains(wgpu::Features::SHADER_F16) {
            forms.push(F16Form::Arrays);
        }
        forms
    }

    /// A handle on the same device whose kernels, and the tensors made with it, read 16-bit
    /// tensors in `form` (the conformance checks run every form); this handle is unchanged.
    /// Arrays on a device without `SHADER_F16` are refused.
    pub fn with_f16_form(&self, form: F16Form) -> Result<Gpu> {
        if !self.f16_forms().contains(&form) {
            return Err(no_shader_f16(&self.inner.info.name));
        }
        Ok(Gpu {
            inner: self.inner.clone(),
            f16_form: form,
        })
    }

    /// The wgpu device, for callers that build their own resources (the desktop app).
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// Counters of submits, dispatches and memory.
    pub fn stats(&self) -> GpuStats {
        let pool = lock(&self.inner.pool);
        GpuStats {
            submits: self.inner.submits.load(Ordering::Relaxed),
            dispatches: self.inner.dispatches.load(Ordering::Relaxed),
            live_bytes: pool.live_bytes,
            peak_bytes: pool.peak_bytes,
            peak_live_bytes: pool.peak_live_bytes,
            largest_binding_bytes: self.inner.largest_binding.load(Ordering::Relaxed),
            largest_buffer_bytes: pool.largest_buffer_bytes,
            pooled_bytes: pool.pooled_bytes,
            allocations: pool.allocations,
            reuses: pool.reuses,
        }
    }

    /// Sets the peak byte counters to the bytes held and live now.
    pub fn reset_peak(&self) {
        let mut pool = lock(&self.inner.pool);
        pool.peak_bytes = pool.live_bytes + pool.pooled_bytes;
        pool.peak_live_bytes = pool.live_bytes;
        pool.largest_buffer_bytes = 0;
        self.inner.largest_binding.store(0, Ordering::Relaxed);
    }

    /// Frees every pooled (unused) buffer.
    pub fn trim_pool(&self) {
        lock(&self.inner.pool).trim_since(0);
    }

    /// Starts a phase of work whose buffers share no sizes with the work around it (the
    /// decoder's feature maps): until the guard drops, `trim_phase` frees the pooled buffers
    /// the phase released, and the drop frees them all, leaving those pooled before it.
    pub fn pool_phase(&self) -> PoolPhase {
        let mark = lock(&self.inner.pool).releases;
        lock(&self.inner.phases).push(mark);
        PoolPhase {
            gpu: self.clone(),
            mark,
        }
    }

    /// Frees the pooled buffers released since the innermost `pool_phase` began (none
    /// outside a phase).
    pub fn trim_phase(&self) {
        if let Some(&mark) = lock(&self.inner.phases).last() {
            lock(&self.inner.pool).trim_since(mark);
        }
    }

    /// While the returned guard lives, every new op output is filled with NaN first, so
    /// unwritten elements show up (guards nest, so concurrent checks do not interfere).
    pub fn poison_outputs_guard(&self) -> PoisonGuard {
        self.inner.poison.fetch_add(1, Ordering::Relaxed);
        PoisonGuard(self.clone())
    }

    pub(crate) fn poison_outputs(&self) -> bool {
        self.inner.poison.load(Ordering::Relaxed) > 0
    }

    /// Submits everything recorded so far (a sync point); a no-op when nothing is pending.
    pub fn flush(&self) -> Result<()> {
        if lock(&self.inner.recorder).submit(&self.inner.queue) {
            self.inner.submits.fetch_add(1, Ordering::Relaxed);
        }
        self.take_error()
    }

    /// Why the device was lost, if it was (then every call fails with `Error::DeviceLost`).
    pub fn lost(&self) -> Option<String> {
        lock(&self.inner.lost).clone()
    }

    /// The first GPU error reported since the last call, as an `Error::Gpu`; once the device
    /// is lost, always `Error::DeviceLost`.
    pub fn take_error(&self) -> Result<()> {
        if let Some(reason) = self.lost() {
            return Err(Error::DeviceLost(reason));
        }
        let error = lock(&self.inner.error).take();
        if error.is_some() {
            // An error may be the first sign of a lost device: a poll runs its callback.
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
            if let Some(reason) = self.lost() {
                return Err(Error::DeviceLost(reason));
            }
        }
        match error {
            Some(msg) => Err(Error::Gpu(msg)),
            None => Ok(()),
        }
    }

    /// A storage buffer of at least `bytes` from the pool (`exact`: see `BufferPool::acquire`).
    pub(crate) fn acquire(&self, bytes: u64, exact: bool) -> wgpu::Buffer {
        let max = self.inner.limits.max_buffer_size;
        lock(&self.inner.pool).acquire(&self.inner.device, bytes, max, exact)
    }

    pub(crate) fn release(&self, buffer: wgpu::Buffer) {
        lock(&self.inner.pool).release(buffer);
    }

    /// Checks a storage binding of `bytes` against the adapter's limit.
    pub(crate) fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let limit = self.inner.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::Limit {
                what: what.to_string(),
                requested: bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit,
            });
        }
        Ok(())
    }

    /// Workgroup grid for `groups` workgroups: x up to the per-dimension limit, then y.
    /// Shaders rebuild the linear id as `wid.x + wid.y * nwg.x`.
    pub fn grid(&self, op: &str, groups: u32) -> Result<[u32; 3]> {
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if groups <= max {
            return Ok([groups.max(1), 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(Error::Limit {
                what: op.to_string(),
                requested: groups as u64,
                limit_name: "max_compute_workgroups_per_dimension^2",
                limit: max as u64 * max as u64,
            });
        }
        Ok([groups.div_ceil(y), y, 1])
    }

    /// Records `kernel` with one thread per item over `items` items, in workgroups of
    /// `ITEM_WORKGROUP` threads (a 2D grid past the per-dimension limit; the kernel rebuilds
    /// the linear id and skips ids past the end).
    pub fn dispatch_items<U: super::Uniform>(
        &self,
        kernel: &Kernel,
        defines: &[(&str, u32)],
        tensors: &[&Tensor],
        params: &U,
        items: usize,
    ) -> Result<()> {
        // No work: nothing to record (an empty tensor would not fill its vec4 bindings).
        if items == 0 {
            return Ok(());
        }
        let groups = items.div_ceil(ITEM_WORKGROUP as usize);
        let groups = u32::try_from(groups).map_err(|_| Error::Limit {
            what: format!("dispatch of {}", kernel.entry),
            requested: groups as u64,
            limit_name: "workgroups of one dispatch (u32)",
            limit: u32::MAX as u64,
        })?;
        self.dispatch_groups(kernel, defines, tensors, params, groups)
    }

    /// Records `kernel` over `groups` workgroups, as a 2D grid past the per-dimension limit
    /// (the kernel rebuilds the linear workgroup id).
    pub fn dispatch_groups<U: super::Uniform>(
        &self,
        kernel: &Kernel,
        defines: &[(&str, u32)],
        tensors: &[&Tensor],
        params: &U,
        groups: u32,
    ) -> Result<()> {
        let grid = self.grid(kernel.entry, groups)?;
        self.dispatch(kernel, defines, tensors, params, grid)
    }

    /// Records one dispatch of `kernel` over `tensors` (bindings 1..) with uniform `params`,
    /// which must be the uniform type the kernel declares.
    pub fn dispatch<U: super::Uniform>(
        &self,
        kernel: &Kernel,
        defines: &[(&str, u32)],
        tensors: &[&Tensor],
        params: &U,
        workgroups: [u32; 3],
    ) -> Result<()> {
        if super::UniformLayout::of::<U>() != kernel.uniform {
            return Err(Error::Invalid(format!(
                "kernel {}: launched with the uniform {:?}, declared with {:?}",
                kernel.entry,
                U::FIELDS,
                kernel.uniform.fields
            )));
        }
        if !kernel.shader.reads_f16 && tensors.iter().any(|t| t.dtype() == DType::F16) {
            return Err(Error::Invalid(format!(
                "kernel {} ({}) reads 32-bit operands; an f16 tensor was bound",
                kernel.entry, kernel.shader.name
            )));
        }
        let slots: Vec<u32> = (1..)
            .zip(kernel.bindings)
            .filter(|(_, a)| **a != super::Access::Skip)
            .map(|(i, _)| i)
            .collect();
        if tensors.len() != slots.len() {
            return Err(Error::Invalid(format!(
                "kernel {}: {} tensors bound, {} bindings declared",
                kernel.entry,
                tensors.len(),
                slots.len()
            )));
        }
        let max = self.inner.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::Limit {
                what: format!("dispatch of {}", kernel.entry),
                requested: *workgroups.iter().max().unwrap_or(&0) as u64,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max as u64,
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        for t in tensors {
            self.check_binding(kernel.entry, t.byte_len())?;
            (self.inner.largest_binding).fetch_max(t.byte_len(), Ordering::Relaxed);
        }
        // The f16-array form adds its define on the stack (this runs on every dispatch).
        let mut with_arrays = [("", 0u32); MAX_DEFINES + 1];
        let defines = if kernel.shader.reads_f16 && self.f16_form() == F16Form::Arrays {
            let n = defines.len();
            if n > MAX_DEFINES {
                return Err(Error::Invalid(format!(
                    "{}: {n} shader defines, more than {MAX_DEFINES}",
                    kernel.entry
                )));
            }
            with_arrays[..n].copy_from_slice(defines);
            with_arrays[n] = (super::F16_ARRAYS, 1);
            &with_arrays[..=n]
        } else {
            defines
        };
        let device = &self.inner.device;
        let (pipeline, layout) = lock(&self.inner.pipelines).get(device, kernel, defines);
        #[cfg(not(target_arch = "wasm32"))]
        let timer = self.profile_start()?;
        let mut recorder = lock(&self.inner.recorder);
        let (ubuf, offset, size) = recorder.params(device, bytemuck::bytes_of(params));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &ubuf,
                offset,
                size: wgpu::BufferSize::new(size),
            }),
        }];
        for (slot, t) in slots.iter().zip(tensors) {
            entries.push(wgpu::BindGroupEntry {
                binding: *slot,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: t.buffer(),
                    offset: t.offset(),
                    size: wgpu::BufferSize::new(t.byte_len().max(4)),
                }),
            });
        }
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &layout,
            entries: &entries,
        });
        {
            let pass = recorder.pass(device);
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        recorder.pending += 1;
        self.inner.dispatches.fetch_add(1, Ordering::Relaxed);
        let full = recorder.pending >= MAX_PENDING_DISPATCHES;
        drop(recorder);
        if full {
            self.flush()?;
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(start) = timer {
            self.profile_end(kernel.entry, defines, start)?;
        }
        Ok(())
    }

    /// Turns per-kernel profiling on (native; see `gpu::KernelTime`), clearing earlier times.
    pub fn start_profiling(&self) {
        *lock(&self.inner.profile) = Some(Profile::default());
    }

    /// Turns profiling off and returns the time per kernel variant, most first (empty when
    /// profiling was off).
    pub fn stop_profiling(&self) -> Vec<KernelTime> {
        lock(&self.inner.profile)
            .take()
            .map(Profile::report)
            .unwrap_or_default()
    }

    /// When profiling, waits for the work before a dispatch and starts its clock.
    #[cfg(not(target_arch = "wasm32"))]
    fn profile_start(&self) -> Result<Option<std::time::Instant>> {
        if lock(&self.inner.profile).is_none() {
            return Ok(None);
        }
        self.synchronize()?;
        Ok(Some(std::time::Instant::now()))
    }

    /// Waits for the dispatch just recorded and adds its time to its kernel.
    #[cfg(not(target_arch = "wasm32"))]
    fn profile_end(
        &self,
        entry: &str,
        defines: &[(&str, u32)],
        start: std::time::Instant,
    ) -> Result<()> {
        self.synchronize()?;
        if let Some(p) = lock(&self.inner.profile).as_mut() {
            p.add(entry, defines, start.elapsed());
        }
        Ok(())
    }

    /// Records a buffer-to-buffer copy in the open encoder (ordered with dispatches).
    pub(crate) fn copy(
        &self,
        src: &wgpu::Buffer,
        src_off: u64,
        dst: &wgpu::Buffer,
        dst_off: u64,
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        let mut recorder = lock(&self.inner.recorder);
        recorder
            .encoder(&self.inner.device)
            .copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
    }
}

/// A phase of pooled buffers (`Gpu::pool_phase`); dropping it frees what the phase pooled.
pub struct PoolPhase {
    gpu: Gpu,
    /// The pool's release count when the phase began.
    mark: u64,
}

impl Drop for PoolPhase {
    fn drop(&mut self) {
        let mut phases = lock(&self.gpu.inner.phases);
        // Phases usually end innermost first; one that outlives a later one (a run replaced
        // by the next) removes its own mark.
        if let Some(at) = phases.iter().rposition(|m| *m == self.mark) {
            phases.remove(at);
        }
        drop(phases);
        lock(&self.gpu.inner.pool).trim_since(self.mark);
    }
}
