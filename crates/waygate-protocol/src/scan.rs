//! The top-level members of a JSON object, found by scanning its bytes.
//!
//! Reading three members of a forwarded result through serde's derive cost ~2 k
//! instructions per call (every other member is tokenized only to be ignored); a byte
//! scan of text serde has already validated costs a tenth of that. Text that is not a
//! plain object (an escape in a key, anything unexpected) gives `None`, and the caller
//! reads it the general way.

/// Calls `f(key, value_text)` for each top-level member of the object `text`, in order.
pub fn members<'a>(text: &'a str, mut f: impl FnMut(&'a str, &'a str)) -> Option<()> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(b, i)?;
        let key = text.get(i + 1..end - 1)?;
        if key.contains('\\') {
            return None;
        }
        i = ws(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, i + 1);
        let start = i;
        i = value_end(b, i)?;
        f(key, text.get(start..i)?);
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The index after the string whose opening quote is at `i`.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// The index after the value that starts at `i`.
fn value_end(b: &[u8], mut i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let start = i;
            while !matches!(b.get(i), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        members(text, |k, v| out.push((k, v)))?;
        Some(out)
    }

    #[test]
    fn members_are_found_with_their_text_whatever_they_hold() {
        let text = r#" { "a" : 1.50e3 , "s":"x\"}],{" ,"o":{"k":[1,{"z":"]"}]},"n":null,"t":true,"e":{},"l":[] } "#;
        assert_eq!(
            all(text).unwrap(),
            vec![
                ("a", "1.50e3"),
                ("s", r#""x\"}],{""#),
                ("o", r#"{"k":[1,{"z":"]"}]}"#),
                ("n", "null"),
                ("t", "true"),
                ("e", "{}"),
                ("l", "[]"),
            ]
        );
        assert_eq!(all("{}").unwrap(), vec![]);
        assert_eq!(all(r#"{"é":"ü"}"#).unwrap(), vec![("é", r#""ü""#)]);
    }

    #[test]
    fn anything_but_a_plain_object_is_left_to_the_parser() {
        for text in [
            "",
            "[]",
            "{",
            r#"{"a":1"#,
            r#"{"a":1,}x"#,
            r#"{"a":1} x"#,
            r#"{"a\u0062":1}"#,
            r#"{"a" 1}"#,
            r#"{"a":}"#,
            r#"{"a":[1,2}"#,
            r#"{"a":"unterminated}"#,
            r#"{"a":{"b":1}}}"#,
            "{\"a\":\"\\",
        ] {
            assert!(all(text).is_none(), "{text:?}");
        }
    }
}
