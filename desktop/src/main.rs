//! BitDance desktop studio: open any BitDance model, search its classes, watch the image form
//! as it is sampled, keep and reproduce images by their recipes, check the GPU.

mod app;
mod gallery;
mod generate;
mod gpu_panel;
mod models;
mod storage;
#[cfg(test)]
mod tests;
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
