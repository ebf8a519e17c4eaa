//! `old-world`: a hostile plugin for the host's tests, built against an older, incompatible version of our world
//! (`retention:policy@0.0.1`, see `wit/`). The host must refuse to load it and say which version it found. Never
//! point a real dataset at it.

wit_bindgen::generate!({ world: "plugin", path: "wit" });

use exports::retention::policy::policy::Guest;

struct OldWorld;

impl Guest for OldWorld {
    fn decide(names: Vec<String>) -> Vec<u8> {
        vec![3; names.len()]
    }
}

export!(OldWorld);
