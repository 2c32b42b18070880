//! Server-sent events, as far as MCP uses them: the `data` of each event, joined across
//! lines, and its `event` name (the legacy transport's `endpoint`); `id` and `retry`
//! fields and comments are skipped.

#[derive(Default)]
pub(crate) struct Parser {
    buf: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    names: Vec<Option<String>>,
}

impl Parser {
    /// Feed bytes; returns `(event name, data)` of every event they complete.
    pub(crate) fn push_named(&mut self, bytes: &[u8]) -> Vec<(Option<String>, Vec<u8>)> {
        let data = self.push(bytes);
        let names = std::mem::take(&mut self.names);
        names.into_iter().zip(data).collect()
    }

    /// Feed bytes; returns the data of every event they complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.names.clear();
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                if self.has_data {
                    events.push(std::mem::take(&mut self.data));
                    self.names.push(self.event.take());
                    self.has_data = false;
                }
                self.event = None;
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"event:") {
                let name = rest.strip_prefix(b" ").unwrap_or(rest);
                self.event = Some(String::from_utf8_lossy(name).into_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix(b"data") {
                let value = match rest.first() {
                    None => &[][..],
                    Some(b':') => rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..]),
                    Some(_) => continue, // a field named e.g. "database"
                };
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
        }
        events
    }

    /// Bytes held that do not yet form an event (to cap a hostile stream).
    pub(crate) fn pending(&self) -> usize {
        self.buf.len() + self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_across_chunks_lines_and_line_endings() {
        let mut p = Parser::default();
        assert!(p.push(b"id: 1\r\nevent: message\r\ndata: {\"a\"").is_empty());
        assert_eq!(p.push(b":1}\r\n\r\n: comment\n\n"), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(p.push(b"data:x\ndata: y\n\n"), vec![b"x\ny".to_vec()]);
        assert!(p.push(b"retry: 10\n\n").is_empty());
        assert_eq!(p.pending(), 0);
        p.names.clear();
        let named = p.push_named(b"event: endpoint\ndata: /messages?sessionId=1\n\ndata: {}\n\n");
        assert_eq!(
            named,
            vec![
                (Some("endpoint".into()), b"/messages?sessionId=1".to_vec()),
                (None, b"{}".to_vec())
            ]
        );
    }
}
