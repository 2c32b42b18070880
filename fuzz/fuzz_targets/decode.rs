//! The request decode path, as the HTTP and stdio transports run it: depth guard, JSON-RPC
//! framing, era classification and envelope parsing, mirrored-header decoding, error
//! encoding, and the policy glob matcher. Any panic here is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use waygate_core::era;
use waygate_protocol::jsonrpc::{decode, encode_response, nesting_exceeds, Incoming};
use waygate_protocol::{headers, Message, ProtocolVersion};

fn classify(msg: Message) {
    let (id, method, mut params) = match msg {
        Message::Request { id, method, params } => (Some(id), method, params),
        Message::Notification { method, params } => (None, method, params),
        Message::Response { .. } => return,
    };
    let _ = era::has_envelope(params.as_ref());
    let _ = era::envelope_version(params.as_ref());
    let _ = era::legacy_progress_token(params.as_ref());
    let _ = waygate_core::policy::target_of(&method, params.as_ref());
    let _ = era::parse_envelope(params.as_mut());
    let _ = encode_response(id.as_ref(), Ok(&serde_json::Value::Null));
}

fuzz_target!(|data: &[u8]| {
    if nesting_exceeds(data, 64) {
        return; // the transports refuse these before parsing
    }
    match decode(data) {
        Ok(Incoming::Single(m)) => classify(m),
        Ok(Incoming::Batch(items)) => {
            for i in items {
                match i {
                    Ok(m) => classify(m),
                    Err(e) => drop(encode_response(e.id.as_ref(), Err(&e.error))),
                }
            }
        }
        Err(e) => drop(encode_response(e.id.as_ref(), Err(&e.error))),
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = headers::decode_value(s);
        let _ = ProtocolVersion::parse(s);
        let _ = era::is_legacy_version(s);
        if let Some((p, t)) = s.split_once('\n') {
            let _ = waygate_core::policy::glob(p, t);
        }
    }
});
