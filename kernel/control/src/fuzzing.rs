//! The fuzz driver, shared by the cargo-fuzz target `control` and the unit tests.
//!
//! Input: a method selector byte, then the path up to the first `\n`, then the body.
//! [`decode`] must never panic; an error must have one of the five statuses and a
//! one-line message; a command it returns must pass [`Command::validate`], carry the method
//! and path it came from, and encode again (method, path, body through `serde-json-core`'s
//! serializer) to a request that decodes to the same command.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::{Command, ControlError, MAX_BODY, decode};

/// The methods the selector byte picks from: the five the API uses, and some it refuses.
pub const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "get", ""];

/// Runs one fuzz input (see the module doc); the command it decoded to, if any.
pub fn request(data: &[u8]) -> Option<Command> {
    let (&selector, rest) = data.split_first()?;
    let method = METHODS[usize::from(selector) % METHODS.len()];
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let path = match core::str::from_utf8(path) {
        Ok(p) => p,
        Err(e) => core::str::from_utf8(&path[..e.valid_up_to()]).unwrap_or_default(),
    };
    check(method, path, body)
}

/// Decodes one request and checks every promise of the result (see the module doc).
pub fn check(method: &str, path: &str, body: &[u8]) -> Option<Command> {
    match decode(method, path, body) {
        Ok(command) => {
            if let Err(e) = command.validate() {
                panic!("decoded {command:?}, which fails validation: {e}");
            }
            let expected = if method == "HEAD" { "GET" } else { method };
            assert_eq!(command.method(), expected, "{command:?}");
            assert_eq!(command.path(), path, "{command:?}");
            let encoded = body_of(&command);
            assert!(encoded.len() <= MAX_BODY, "{command:?} encodes too long");
            match decode(command.method(), &command.path(), &encoded) {
                Ok(again) => assert_eq!(again, command),
                Err(e) => panic!(
                    "{command:?} encoded as {:?} decodes to {e}",
                    core::str::from_utf8(&encoded)
                ),
            }
            Some(command)
        }
        Err(e) => {
            let status = e.status();
            assert!(
                matches!(status, 400 | 404 | 405 | 413 | 422),
                "{e:?} has status {status}"
            );
            let text = format!("{e}");
            assert!(!text.is_empty() && !text.contains('\n'), "{e:?}: {text:?}");
            if let ControlError::MethodNotAllowed { allow } = e {
                assert!(
                    !allow.split(", ").any(|m| m == method),
                    "{method} is in {allow}"
                );
            }
            None
        }
    }
}

/// The body a command travels with, as JSON without whitespace (empty if it takes none).
pub fn body_of(command: &Command) -> Vec<u8> {
    let mut buf = vec![0u8; 4 * MAX_BODY];
    let len = match command {
        Command::Create(c) => serde_json_core::to_slice(c, &mut buf),
        Command::Resize { resize, .. } => serde_json_core::to_slice(resize, &mut buf),
        Command::AttachDisk { disk, .. } => serde_json_core::to_slice(disk, &mut buf),
        Command::AttachNic { nic, .. } => serde_json_core::to_slice(nic, &mut buf),
        _ => Ok(0),
    };
    let len = len.expect("a valid command's body fits four times the body limit");
    buf.truncate(len);
    buf
}
