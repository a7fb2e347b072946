//! Training-step parity with the official PyTorch code: the loss and the gradient of every
//! trainable parameter of the tiny 1x and 4x models, given the official forward's random draws
//! (bit flips, class dropout, flow times, noise), from
//! scripts/reference/export_train_fixtures.py. Error: max |ours - official| / max |official|
//! per tensor, at most 1e-4.

use bitdance::autograd::Tape;
use bitdance::io::WeightFile;
use bitdance::model::{ar_parameters, ModelConfig, ParamStore, ParamVars};
use bitdance::train::{ar_loss, ArBatch, ArDraws, ArRecipe};
use bitdance_tests::{assert_close, gpu, max_relative_error};

fn check(config: &str, weights: &[u8], fixture: &[u8]) {
    let c = ModelConfig::from_json("fixture", config).unwrap();
    let w = WeightFile::parse_named("weights", weights).unwrap();
    let fx = WeightFile::parse_named("fixture", fixture).unwrap();
    let store = ParamStore::from_weights(&gpu(), &w, &ar_parameters(&c)).unwrap();
    let ids =
        |name: &str| -> Vec<u32> { fx.to_f32(name).unwrap().iter().map(|&v| v as u32).collect() };
    let tokens = fx.to_f32("fixture.tokens").unwrap();
    let classes = ids("fixture.classes");
    let draws = ArDraws {
        inputs: fx.to_f32("draws.inputs").unwrap(),
        classes: ids("draws.classes"),
        t: fx.to_f32("draws.t").unwrap(),
        noise: fx.to_f32("draws.noise").unwrap(),
    };
    let recipe = ArRecipe {
        diff_batch_mul: 2,
        ..ArRecipe::default()
    };
    let batch = ArBatch {
        tokens: &tokens,
        classes: &classes,
    };
    let tape = Tape::new();
    let vars = ParamVars::new(&tape, &store, true);
    let loss = ar_loss(&tape, &c, &vars, &batch, &draws, &recipe).unwrap();
    let got = tape.value(loss).read_f32().unwrap();
    assert_close("loss", &got, &fx.to_f32("expect.loss").unwrap(), 1e-4);
    let grads = tape.backward(loss).unwrap();
    let mut worst = (0.0f64, String::new());
    let mut checked = 0;
    for (name, v) in vars.used() {
        let want = fx.to_f32(&format!("grad.{name}")).unwrap();
        let got = grads.get(v).unwrap().read_f32().unwrap();
        let err = max_relative_error(&got, &want);
        if err > worst.0 {
            worst = (err, name.clone());
        }
        assert_close(&format!("grad {name}"), &got, &want, 1e-4);
        checked += 1;
    }
    let expected = fx.names().iter().filter(|n| n.starts_with("grad.")).count();
    assert_eq!(
        checked, expected,
        "every parameter with an official gradient is checked"
    );
    eprintln!("{checked} gradients, worst {:.2e} ({})", worst.0, worst.1);
}

#[test]
fn training_step_1x() {
    check(
        include_str!("../fixtures/parity/tiny_1x.json"),
        include_bytes!("../fixtures/parity/tiny_1x.safetensors"),
        include_bytes!("../fixtures/parity/tiny_1x.train.safetensors"),
    );
}

#[test]
fn training_step_4x() {
    check(
        include_str!("../fixtures/parity/tiny_4x.json"),
        include_bytes!("../fixtures/parity/tiny_4x.safetensors"),
        include_bytes!("../fixtures/parity/tiny_4x.train.safetensors"),
    );
}
