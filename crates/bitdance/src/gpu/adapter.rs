//! Adapter selection: backend and name filters from options or the environment.

use crate::{Error, Result};

/// Memory a job may need before it is refused (see `Gpu::check_memory`), unless set otherwise.
pub const DEFAULT_MEMORY_BUDGET: u64 = 16 << 30;

/// The environment variable that sets the memory budget, in GiB.
pub const MEMORY_BUDGET_VAR: &str = "BITDANCE_MEMORY_BUDGET_GIB";
/// The environment variable choosing the limits requested: `webgpu` or `adapter`.
pub const LIMITS_VAR: &str = "BITDANCE_LIMITS";

/// How to pick the adapter and what to use of it; `from_env` reads `WGPU_BACKEND`,
/// `BITDANCE_ADAPTER`, `BITDANCE_SUBGROUPS`, `BITDANCE_MEMORY_BUDGET_GIB`, `BITDANCE_LIMITS`
/// and `BITDANCE_F16`.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backend name: vulkan, metal, dx12, gl or webgpu; `None` means all.
    pub backend: Option<String>,
    /// Case-insensitive substring of the adapter name; `None` means any.
    pub adapter: Option<String>,
    /// Never use subgroup operations, even where the adapter has them (the kernels then take
    /// their portable forms, as on the web).
    pub no_subgroups: bool,
    /// Bytes a job may need (`None`: `DEFAULT_MEMORY_BUDGET`); larger jobs are refused up
    /// front with their estimate instead of failing part way.
    pub memory_budget: Option<u64>,
    /// Ask for WebGPU's default limits (128 MiB per storage binding, 256 MiB per buffer, ...)
    /// instead of the adapter's own: what any browser grants, checked on a native adapter.
    pub webgpu_limits: bool,
    /// Caps the storage binding size below what is granted (bytes): a smaller device, checked
    /// on this one (tests of the refusals, the web page's `?max_binding_mib=`).
    pub max_binding_bytes: Option<u64>,
    /// How shaders read 16-bit tensors (`None`: `F16Form::default_for` the device); `Arrays`
    /// on a device without `SHADER_F16` is refused when the device opens.
    pub f16_form: Option<super::F16Form>,
}

impl GpuOptions {
    /// Options from `WGPU_BACKEND` and `BITDANCE_ADAPTER` (unset or empty means no filter) and
    /// `BITDANCE_SUBGROUPS` (`0` or `off`: no subgroup operations) and
    /// `BITDANCE_MEMORY_BUDGET_GIB` (a positive number of GiB) and `BITDANCE_LIMITS` (`webgpu`:
    /// WebGPU's default limits, `adapter` or unset: the adapter's) and `BITDANCE_F16`
    /// (`packed` or `arrays`: how shaders read 16-bit tensors); a value that is not one of
    /// these is an error naming it.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let off = |v: String| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "off");
        let memory_budget = var(MEMORY_BUDGET_VAR)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|gib| gib.is_finite() && *gib > 0.0)
                    .map(|gib| (gib * (1u64 << 30) as f64) as u64)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "{MEMORY_BUDGET_VAR}={v}: expected a positive number of GiB"
                        ))
                    })
            })
            .transpose()?;
        let webgpu_limits = match var(LIMITS_VAR).map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "adapter" => false,
            Some(v) if v == "webgpu" => true,
            Some(v) => {
                return Err(Error::Invalid(format!(
                    "{LIMITS_VAR}={v}: expected webgpu or adapter"
                )))
            }
        };
        Ok(Self {
            backend: var("WGPU_BACKEND"),
            adapter: var("BITDANCE_ADAPTER"),
            no_subgroups: var("BITDANCE_SUBGROUPS").is_some_and(off),
            memory_budget,
            webgpu_limits,
            max_binding_bytes: None,
            f16_form: var(super::F16_FORM_VAR)
                .map(|v| super::F16Form::parse(&v, super::F16_FORM_VAR))
                .transpose()?,
        })
    }

    /// The wgpu backend set these options allow, or an error naming an unknown backend.
    pub fn backends(&self) -> Result<wgpu::Backends> {
        let Some(name) = &self.backend else {
            return Ok(wgpu::Backends::all());
        };
        let mut set = wgpu::Backends::empty();
        for part in name.split(',').map(|p| p.trim().to_ascii_lowercase()) {
            set |= match part.as_str() {
                "vulkan" | "vk" => wgpu::Backends::VULKAN,
                "metal" | "mtl" => wgpu::Backends::METAL,
                "dx12" | "d3d12" => wgpu::Backends::DX12,
                "gl" | "gles" | "opengl" => wgpu::Backends::GL,
                "webgpu" | "browser" => wgpu::Backends::BROWSER_WEBGPU,
                _ => return Err(Error::UnknownBackend(name.clone())),
            };
        }
        Ok(set)
    }

    /// A readable description of the filters, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "backend {}, adapter name containing {}",
            self.backend.as_deref().unwrap_or("any"),
            self.adapter
                .as_deref()
                .map(|a| format!("'{a}'"))
                .unwrap_or_else(|| "anything".into())
        )
    }

    fn name_matches(&self, name: &str) -> bool {
        self.adapter
            .as_ref()
            .is_none_or(|want| name.to_lowercase().contains(&want.to_lowercase()))
    }
}

/// Name, backend, device type and driver of an adapter, as shown by `bitdance doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    /// Adapter name reported by the driver.
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl, BrowserWebGpu).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
}

impl AdapterSummary {
    pub(crate) fn of(info: &wgpu::AdapterInfo) -> Self {
        Self {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
const NO_ADAPTER_HINT: &str = "none (is a Vulkan/Metal/DX12/GL driver installed? on Linux without a GPU: apt-get install mesa-vulkan-drivers)";
#[cfg(target_arch = "wasm32")]
const NO_ADAPTER_HINT: &str =
    "none (is WebGPU enabled in this browser? Chromium on Linux needs --enable-unsafe-webgpu)";

/// Higher is preferred: discrete, integrated, virtual, other, CPU; then any backend over GL
/// (the GL backend has fewer storage bindings and slower dispatch).
fn preference(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let backend = u8::from(info.backend != wgpu::Backend::Gl);
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 1,
        wgpu::DeviceType::Cpu => 0,
    };
    (kind, backend)
}

/// Every adapter of the backends `options` allow (names not filtered), the one `Gpu::new`
/// would pick first; empty in a browser, which exposes no enumeration.
pub async fn available_adapters(options: &GpuOptions) -> Result<Vec<AdapterSummary>> {
    let backends = options.backends()?;
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let mut adapters: Vec<wgpu::AdapterInfo> = instance
        .enumerate_adapters(backends)
        .await
        .iter()
        .map(wgpu::Adapter::get_info)
        .collect();
    adapters.sort_by_key(|info| std::cmp::Reverse(preference(info)));
    Ok(adapters.iter().map(AdapterSummary::of).collect())
}

impl GpuOptions {
    /// These options narrowed to one adapter of `available_adapters`: its backend, and its
    /// name (matched as a substring, so the exact name picks it).
    pub fn choosing(&self, adapter: &AdapterSummary) -> Self {
        Self {
            backend: Some(adapter.backend.to_ascii_lowercase()),
            adapter: Some(adapter.name.clone()),
            ..self.clone()
        }
    }
}

/// Picks the adapter: the most capable device type among those matching the filters.
pub(crate) async fn select_adapter(
    instance: &wgpu::Instance,
    options: &GpuOptions,
) -> Result<wgpu::Adapter> {
    let backends = options.backends()?;
    let candidates = instance.enumerate_adapters(backends).await;
    let seen: Vec<String> = candidates
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?}, {:?})", i.name, i.backend, i.device_type)
        })
        .collect();
    let best = candidates
        .into_iter()
        .filter(|a| options.name_matches(&a.get_info().name))
        .max_by_key(|a| preference(&a.get_info()));
    if let Some(adapter) = best {
        return Ok(adapter);
    }
    // The browser exposes no enumeration: ask for the high-performance adapter directly.
    if seen.is_empty() {
        if let Ok(adapter) = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
        {
            if options.name_matches(&adapter.get_info().name) {
                return Ok(adapter);
            }
        }
    }
    Err(Error::NoAdapter {
        wanted: options.describe(),
        seen: if seen.is_empty() {
            NO_ADAPTER_HINT.into()
        } else {
            seen.join("; ")
        },
    })
}
