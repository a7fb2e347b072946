//! BitDance desktop app: shows the GPU, runs the kernel conformance checks and (with the
//! model) generates an image of the chosen ImageNet class.

mod app;
mod worker;

fn main() -> eframe::Result {
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("BitDance")
            .with_inner_size([1000.0, 760.0]),
        ..Default::default()
    };
    eframe::run_native(
        "BitDance",
        options,
        Box::new(|cc| Ok(Box::new(app::BitDanceApp::new(cc)))),
    )
}
