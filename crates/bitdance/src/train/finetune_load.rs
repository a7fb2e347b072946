//! Starting a fine-tuning run from a model tensor by tensor: the class plan and every check
//! from the headers (the model's, and its separate autoencoder's when it has one), the reads
//! through a `TensorLoader` (in memory natively, from Blobs on the web; the class table grown
//! for new classes on the way, a run of rows at a time), then the trainer.

use super::{ClassPlan, ClassPolicy, TrainSettings, Trainer, BASE_KEY, CLASS_TABLE};
use crate::io::WeightFile;
use crate::model::{
    ar_parameters, check_specs, decoder_parameters, encoder_parameters, items_of, LoadFile,
    ModelConfig, ParamSpec, RowGrowth, TensorLoader, PIECE_BYTES, VAE_PREFIX,
};
use crate::{Error, Gpu, Result};

/// A new run being loaded from its starting model: drive `tensors` (`next_read`/`upload`),
/// then `finish`.
pub struct FinetuneLoad<'f> {
    /// The starting model's reads.
    pub tensors: TensorLoader<'f>,
    config: ModelConfig,
    plan: ClassPlan,
    settings: TrainSettings,
    base_sha256: String,
}

impl<'f> FinetuneLoad<'f> {
    /// Plans a run from `model` (a model of this tool or a converted official one; SHA-256
    /// `base_sha256`, recorded as `bitdance.base_sha256`) with its autoencoder inside or in
    /// `vae` (which serves when given), on a dataset of class folders `folders` mapped onto
    /// its classes by `policy` (new classes grow its class table, each new row the mean of the
    /// model's rows): every missing or misshaped tensor listed in one error, and the memory
    /// checked, before a read.
    pub fn new(
        gpu: &Gpu,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        base_sha256: &str,
        folders: &[String],
        policy: ClassPolicy,
        settings: TrainSettings,
    ) -> Result<Self> {
        Self::in_pieces(
            gpu,
            model,
            vae,
            base_sha256,
            folders,
            policy,
            settings,
            PIECE_BYTES,
        )
    }

    /// `new`, reading tensors over `piece_bytes` a run of rows at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn in_pieces(
        gpu: &Gpu,
        model: &'f WeightFile<'f>,
        vae: Option<&'f WeightFile<'f>>,
        base_sha256: &str,
        folders: &[String],
        policy: ClassPolicy,
        settings: TrainSettings,
        piece_bytes: u64,
    ) -> Result<Self> {
        let base = crate::studio::model_config_of(model)?;
        let plan = ClassPlan::new(&super::classes_of(model)?, folders, policy)?;
        let ar = ar_parameters(&base);
        check_specs(model, &ar)?;
        // A separate autoencoder file serves over the model's own, as in generation.
        let (ae_which, ae_file) = match vae {
            Some(file) => (LoadFile::Vae, file),
            None => (LoadFile::Model, model),
        };
        let ae_prefixed = ae_file.names().iter().any(|n| n.starts_with(VAE_PREFIX));
        let ae: Vec<ParamSpec> = encoder_parameters(&base.vae)
            .into_iter()
            .chain(decoder_parameters(&base.vae))
            .collect();
        let ae_in_file: Vec<ParamSpec> = ae
            .iter()
            .map(|s| ParamSpec {
                name: match ae_prefixed {
                    true => s.name.clone(),
                    false => s.name.trim_start_matches(VAE_PREFIX).to_string(),
                },
                shape: s.shape.clone(),
            })
            .collect();
        check_specs(ae_file, &ae_in_file)?;
        let mut c = base.clone();
        c.num_classes = plan.names.len();
        gpu.check_memory(&settings.task.memory(&c, 1, true))?;
        let half = settings.task.half_weights(&c);
        let mut items = items_of(LoadFile::Model, None, &ar_parameters(&c), &half);
        if plan.added() > 0 {
            let shape = model.shape(CLASS_TABLE)?.to_vec();
            let rows = shape[0];
            let classes = base.num_classes;
            if rows != classes + 1 {
                return Err(Error::Invalid(format!(
                    "{}: '{CLASS_TABLE}' has {rows} rows; {classes} classes and the null row \
                     need {}",
                    model.label(),
                    classes + 1
                )));
            }
            let growth = RowGrowth {
                classes,
                added: plan.added(),
            };
            for item in items.iter_mut().filter(|i| i.spec.name == CLASS_TABLE) {
                item.grow = Some(growth);
            }
        }
        items.extend(items_of(ae_which, Some(ae_file), &ae, &half));
        Ok(FinetuneLoad {
            tensors: TensorLoader::new(gpu, model, vae, items, piece_bytes)?,
            config: c,
            plan,
            settings,
            base_sha256: base_sha256.to_string(),
        })
    }

    /// Reads every tensor from files in memory and starts the run.
    pub fn load_in_memory(mut self) -> Result<(ClassPlan, Trainer)> {
        self.tensors.read_all_in_memory()?;
        self.finish()
    }

    /// The class plan and the new run's trainer, once every tensor is uploaded.
    pub fn finish(self) -> Result<(ClassPlan, Trainer)> {
        let store = self.tensors.finish()?;
        let (frozen, params) = store.partition(|n| n.starts_with(VAE_PREFIX));
        let mut trainer = Trainer::new(self.config, params, frozen, self.settings)?;
        trainer
            .metadata
            .insert(BASE_KEY.to_string(), self.base_sha256);
        Ok((self.plan, trainer))
    }
}
