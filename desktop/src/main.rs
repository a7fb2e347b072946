//! BitDance desktop studio: open any BitDance model, search its classes, watch the image form
//! as it is sampled, keep and reproduce images by their recipes, fine-tune on your own images,
//! check the GPU.

mod app;
mod finetune;
mod gallery;
mod generate;
mod gpu_panel;
mod models;
mod runs;
mod storage;
#[cfg(test)]
mod tests;
mod training;
mod worker;

fn main() -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("BitDance")
            .with_inner_size([1280.0, 800.0]),
        ..Default::default()
    };
    eframe::run_native(
        "BitDance",
        options,
        Box::new(|cc| Ok(Box::new(app::BitDanceApp::new(cc)))),
    )
}
