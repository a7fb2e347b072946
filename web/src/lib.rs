//! BitDance in the browser.
