//! Pages of the catalog's lists: cursors are opaque offsets into what the caller may see;
//! a `tools/list` page is assembled from pre-serialized definitions.

use serde_json::Value;
use waygate_protocol::{ErrorObject, ProtocolVersion};

use super::{Catalog, Filter, Page, B64};
use crate::policy::Target;
use base64::Engine as _;

impl Catalog {
    pub fn resources_page(&self, cursor: Option<&str>, filter: Filter<'_>) -> Result<Page, ErrorObject> {
        let visible = |i: usize| {
            filter.is_none_or(|f| {
                let uri = self.resources[i].0.get("uri").and_then(Value::as_str).unwrap_or("");
                f(Target::Resource(uri))
            })
        };
        self.page(self.resources.len(), cursor, visible, |i| self.resources[i].0.clone())
    }

    pub fn templates_page(&self, cursor: Option<&str>, filter: Filter<'_>) -> Result<Page, ErrorObject> {
        let visible = |i: usize| filter.is_none_or(|f| f(Target::Resource(&self.templates[i].0)));
        self.page(self.templates.len(), cursor, visible, |i| self.templates[i].1.clone())
    }

    pub fn prompts_page(&self, cursor: Option<&str>, filter: Filter<'_>) -> Result<Page, ErrorObject> {
        let visible = |i: usize| filter.is_none_or(|f| f(Target::Prompt(&self.prompts[i].0)));
        self.page(self.prompts.len(), cursor, visible, |i| self.prompts[i].1.clone())
    }

    /// One page over the visible items; cursors count visible items, so a filtered caller
    /// pages through exactly what it may see.
    /// A `tools/list` page as JSON text: `[item,…]` (each item's pre-serialized shape for
    /// `version`) and the next cursor.
    pub fn tools_page_raw(
        &self,
        version: ProtocolVersion,
        cursor: Option<&str>,
        filter: Filter<'_>,
    ) -> Result<(String, Option<String>), ErrorObject> {
        let visible = |i: usize| filter.is_none_or(|f| f(Target::Tool(&self.tools[i].name)));
        let (picked, next_cursor) = self.window(self.tools.len(), cursor, visible)?;
        let size: usize = picked.iter().map(|&i| self.tools[i].raw_for(version).len() + 1).sum();
        let mut out = String::with_capacity(size + 2);
        out.push('[');
        for (n, &i) in picked.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(self.tools[i].raw_for(version));
        }
        out.push(']');
        Ok((out, next_cursor))
    }

    /// The indices on the page `cursor` names, and the cursor of the next one.
    fn window(
        &self,
        len: usize,
        cursor: Option<&str>,
        visible: impl Fn(usize) -> bool,
    ) -> Result<(Vec<usize>, Option<String>), ErrorObject> {
        let start = match cursor {
            None | Some("") => 0,
            Some(c) => decode_cursor(c).ok_or_else(|| {
                ErrorObject::invalid_params(format!("Invalid cursor {c:?}: not issued by this server"))
            })?,
        };
        let mut shown = 0usize;
        let mut picked = Vec::with_capacity(self.page_size.min(len));
        let mut more = false;
        for i in (0..len).filter(|&i| visible(i)) {
            if shown >= start {
                if picked.len() == self.page_size {
                    more = true;
                    break;
                }
                picked.push(i);
            }
            shown += 1;
        }
        if start > shown {
            return Err(ErrorObject::invalid_params(format!(
                "Invalid cursor {:?}: not issued by this server",
                cursor.unwrap_or_default()
            )));
        }
        let end = start + picked.len();
        Ok((picked, more.then(|| encode_cursor(end))))
    }

    fn page(
        &self,
        len: usize,
        cursor: Option<&str>,
        visible: impl Fn(usize) -> bool,
        item: impl Fn(usize) -> Value,
    ) -> Result<Page, ErrorObject> {
        let (picked, next_cursor) = self.window(len, cursor, visible)?;
        Ok(Page {
            items: picked.into_iter().map(item).collect(),
            next_cursor,
        })
    }
}

fn encode_cursor(offset: usize) -> String {
    B64.encode(format!("o:{offset}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = B64.decode(c).ok()?;
    std::str::from_utf8(&raw).ok()?.strip_prefix("o:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejection() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("nope!"), None);
    }
}
