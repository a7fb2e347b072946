//! The official AR training recipe's data-side hyper-parameters.

use super::LoraSpec;

/// Hyper-parameters of the AR loss (official defaults for BitDance-B).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArRecipe {
    /// Bit-flip perturbation of the input tokens: each bit flips with probability
    /// `perturb_rate * u`, u ~ U(0, 1) per bit (0.1 for B, 0.05 for L/H).
    pub perturb_rate: f32,
    /// Probability of replacing a class by the null class (for CFG).
    pub class_dropout: f32,
    /// Repeats of every token's condition in the head loss, each with its own t and noise.
    pub diff_batch_mul: usize,
    /// Mean of the logit-normal flow time: t = sigmoid(N(p_mean, p_std)).
    pub p_mean: f32,
    /// Standard deviation of the logit-normal flow time.
    pub p_std: f32,
    /// Which parameters train (the others stay as they are); runs from before the choice
    /// existed trained everything.
    #[serde(default)]
    pub trains: Trains,
    /// The frozen base of a LoRA or class-table run (its linear weights) held in 16 bits: half
    /// their memory and weight traffic; what trains, its gradients, moments and EMA stay f32.
    /// Ignored when every weight trains (the CLI refuses the pair, the studios' options drop
    /// it); runs from before the choice held it in f32.
    #[serde(default)]
    pub half_base: bool,
}

/// Which parameters of the AR model a run trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Trains {
    /// Every parameter (full AdamW state for each).
    #[default]
    Full,
    /// Only the class table (`cls_embedding.weight`): the cheapest way to add or adapt a
    /// class; gradients, moments and EMA for its rows alone.
    Embeddings,
    /// Low-rank adapters on a frozen model, and the class table: gradients, moments and EMA
    /// for those alone; the model is saved with the adapters merged into its weights.
    Lora(LoraSpec),
}

impl Trains {
    /// The LoRA spec of a LoRA run.
    pub fn lora(&self) -> Option<&LoraSpec> {
        match self {
            Trains::Lora(spec) => Some(spec),
            _ => None,
        }
    }

    /// A few words for messages: "every weight", "the class table", "LoRA r16 (attention,mlp)".
    pub fn describe(&self) -> String {
        match self {
            Trains::Full => "every weight".into(),
            Trains::Embeddings => "the class table".into(),
            Trains::Lora(l) => format!(
                "LoRA rank {} alpha {} on {} and the class table",
                l.rank,
                l.alpha,
                l.targets.describe()
            ),
        }
    }
}

impl Default for ArRecipe {
    fn default() -> Self {
        Self {
            perturb_rate: 0.1,
            class_dropout: 0.1,
            diff_batch_mul: 4,
            p_mean: -0.8,
            p_std: 0.8,
            trains: Trains::Full,
            half_base: false,
        }
    }
}
