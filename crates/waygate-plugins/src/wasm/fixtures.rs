//! WAT fixtures shared by the tests and the call-overhead benchmark.

/// Bytes as a WAT string literal.
fn lit(s: &str) -> String {
    s.bytes().map(|b| format!("\\{b:02x}")).collect()
}

/// A module with one tool whose `waygate_call` body is `call` (params $p $n, result i64).
/// Memory layout: manifest at 0, answer prefix at 4096, heap from 8192 (reset on free).
pub fn module(tool: &str, call: &str, imports: &str) -> String {
    let manifest = format!(r#"{{"tools":[{{"name":"{tool}","description":"test tool {tool}"}}]}}"#);
    let prefix = r#"{"content":[{"type":"text","text":"echo"}],"structuredContent":"#;
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 8192))
  (data (i32.const 0) "{m}")
  (data (i32.const 4096) "{p}")
  (func $alloc (export "waygate_alloc") (param $n i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n)))
    (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.div_u (local.get $n) (i32.const 65536)) (i32.const 1))))))
    (local.get $at))
  (func (export "waygate_free") (param i32 i32) (global.set $bump (i32.const 8192)))
  (func (export "waygate_init") (param i32 i32) (result i64) (i64.const {mlen}))
  (func (export "waygate_call") (param $p i32) (param $n i32) (result i64)
    (local $out i32)
    {call})
)"#,
        m = lit(&manifest),
        p = lit(prefix),
        mlen = manifest.len(),
    )
    .replace("PREFIX_LEN", &prefix.len().to_string())
}

/// Answers `prefix + request + "}"`: the request comes back as structuredContent.
pub const ECHO: &str = r#"
    (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 200))))
    (memory.copy (local.get $out) (i32.const 4096) (i32.const PREFIX_LEN))
    (memory.copy (i32.add (local.get $out) (i32.const PREFIX_LEN)) (local.get $p) (local.get $n))
    (i32.store8 (i32.add (i32.add (local.get $out) (i32.const PREFIX_LEN)) (local.get $n)) (i32.const 125))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
            (i64.extend_i32_u (i32.add (i32.add (local.get $n) (i32.const PREFIX_LEN)) (i32.const 1))))"#;

/// A module with one tool (described as `desc`) whose every call answers `answer`.
pub fn constant(tool: &str, desc: &str, answer: &str) -> String {
    let manifest = format!(r#"{{"tools":[{{"name":"{tool}","description":"{desc}"}}]}}"#);
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 8192))
  (data (i32.const 0) "{m}")
  (data (i32.const 4096) "{a}")
  (func (export "waygate_alloc") (param $n i32) (result i32)
    (local $at i32) (local.set $at (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $n))) (local.get $at))
  (func (export "waygate_free") (param i32 i32) (global.set $bump (i32.const 8192)))
  (func (export "waygate_init") (param i32 i32) (result i64) (i64.const {ml}))
  (func (export "waygate_call") (param i32 i32) (result i64) (i64.const {al})))"#,
        m = lit(&manifest),
        a = lit(answer),
        ml = manifest.len(),
        al = (4096u64 << 32) | answer.len() as u64,
    )
}
