//! Dispatch recording: one command encoder and one compute pass per sync point, uniform
//! params in an arena.

/// Bytes per uniform arena chunk.
const CHUNK_BYTES: u64 = 64 * 1024;

/// Records dispatches into one compute pass of one encoder (a pass per dispatch costs lavapipe
/// about a third more per small dispatch); params live in chunks written just before submit.
pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    chunks: Vec<(wgpu::Buffer, Vec<u8>)>,
    current: usize,
    align: u64,
    pub pending: u32,
}

impl Recorder {
    pub fn new(align: u32) -> Self {
        Self {
            encoder: None,
            pass: None,
            chunks: Vec::new(),
            current: 0,
            align: align.max(16) as u64,
            pending: 0,
        }
    }

    /// The open encoder for commands outside compute passes (copies), created on first use
    /// after a submit; ends the open compute pass.
    pub fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bitdance"),
            })
        })
    }

    /// The open compute pass, begun on first use after a submit or a copy.
    pub fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        if self.pass.is_none() {
            let pass = self
                .encoder(device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("bitdance"),
                    timestamp_writes: None,
                })
                .forget_lifetime();
            self.pass = Some(pass);
        }
        self.pass.as_mut().expect("begun above")
    }

    /// Places `params` (padded to 16 bytes) in the arena; returns (buffer, offset, size).
    pub fn params(&mut self, device: &wgpu::Device, params: &[u8]) -> (wgpu::Buffer, u64, u64) {
        let size = (params.len() as u64).max(16).div_ceil(16) * 16;
        loop {
            if self.current == self.chunks.len() {
                let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params arena"),
                    size: CHUNK_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.chunks.push((buffer, Vec::new()));
            }
            let (buffer, data) = &mut self.chunks[self.current];
            let offset = (data.len() as u64).div_ceil(self.align) * self.align;
            if offset + size <= CHUNK_BYTES {
                data.resize(offset as usize, 0);
                data.extend_from_slice(params);
                data.resize((offset + size) as usize, 0);
                return (buffer.clone(), offset, size);
            }
            self.current += 1;
        }
    }

    /// Writes the params and submits everything recorded; returns whether anything was.
    pub fn submit(&mut self, queue: &wgpu::Queue) -> bool {
        self.pass = None;
        let Some(encoder) = self.encoder.take() else {
            return false;
        };
        for (buffer, data) in &mut self.chunks {
            if !data.is_empty() {
                queue.write_buffer(buffer, 0, data);
                data.clear();
            }
        }
        self.current = 0;
        self.pending = 0;
        queue.submit([encoder.finish()]);
        true
    }
}
