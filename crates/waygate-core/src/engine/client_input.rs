//! A session-era caller answering a handler's `InputRequired`: the requests go to the
//! client on its stream, together, and the answers back to the handler.
//!
//! A handler may hold work while the caller answers — an upstream server blocked on the
//! question the gateway relayed. So the wait also ends when that work stops waiting on
//! its own (the upstream died, timed out, or answered anyway), and on every way out but
//! handing the answers back — the client failed or cannot answer, the caller cancelled or
//! went away, a capability is missing — the held work is released at once: the upstream
//! hears of it now, not at its input timeout.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use waygate_protocol::{codes, meta, ErrorObject};

use crate::context::CallContext;
use crate::plugin::Plugin;
use crate::session::Session;

/// How asking the client ended.
pub(super) enum Asked {
    /// Every request answered, keyed like the handler's requests.
    Answers(Map<String, Value>),
    /// The handler's held work stopped waiting: `None` to run the handler again without
    /// answers (it reports what happened), `Some(why)` when that work is gone.
    Ended(Option<String>),
    /// The caller cancelled the call.
    Cancelled(ErrorObject),
    /// The client could not answer `method`.
    Failed { method: String, error: ErrorObject },
}

/// Send `requests` to the client of `session` together and wait for every answer, or
/// for the work `plugin` holds under `state` to end first.
pub(super) async fn ask(
    session: &Arc<Session>,
    ctx: &CallContext,
    requests: Map<String, Value>,
    plugin: &Arc<dyn Plugin>,
    state: Option<&Value>,
    timeout: Duration,
) -> Asked {
    // The client's pending requests end with the wait, however it ends.
    let asking = ctx.cancel.child_token();
    let _stop = asking.clone().drop_guard();
    let mut asked = Vec::with_capacity(requests.len());
    for (key, req) in requests {
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut p = req.get("params").cloned().unwrap_or(json!({}));
        // Each request names its key in `_meta`, so a gateway in front keeps the handler's keys.
        if let Some(o) = p.as_object_mut() {
            let m = o.entry("_meta").or_insert_with(|| json!({}));
            if let Some(m) = m.as_object_mut() {
                m.insert(meta::INPUT_KEY.into(), json!(key));
            }
        }
        let (session, out, cancel, m) = (session.clone(), ctx.out.clone(), asking.clone(), method.clone());
        let task = tokio::spawn(async move { session.request(out.as_ref(), &m, &p, timeout, &cancel).await });
        asked.push((key, method, task));
    }
    let answers = async {
        let mut answers = Map::new();
        for (key, method, task) in asked {
            let answer = task
                .await
                .unwrap_or_else(|e| Err(ErrorObject::internal(format!("the request ended: {e}"))));
            match answer {
                Ok(v) => {
                    answers.insert(key, v);
                }
                Err(e) if e.code == codes::REQUEST_CANCELLED => return Asked::Cancelled(e),
                Err(error) => return Asked::Failed { method, error },
            }
        }
        Asked::Answers(answers)
    };
    let ended = async {
        match state {
            Some(s) => plugin.held_ended(s).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        biased;
        asked = answers => asked,
        why = ended => Asked::Ended(why),
    }
}

/// Work a handler holds for its caller's answers, released on every way out but
/// [`Release::keep`] (the answers, or the state, go back to the handler).
pub(super) struct Release {
    plugin: Arc<dyn Plugin>,
    state: Option<Value>,
    owner: Option<String>,
    why: String,
}

impl Release {
    pub(super) fn new(plugin: &Arc<dyn Plugin>, state: Option<&Value>, ctx: &CallContext) -> Release {
        Release {
            plugin: plugin.clone(),
            state: state.cloned(),
            owner: ctx.owner().map(str::to_string),
            why: "the call ended before its caller answered".into(),
        }
    }

    /// What the holder is told when the work is released.
    pub(super) fn because(&mut self, why: impl Into<String>) {
        self.why = why.into();
    }

    /// The state goes back to the handler: nothing to release.
    pub(super) fn keep(mut self) {
        self.state = None;
    }
}

impl Drop for Release {
    /// Also runs when the call's future is dropped (the caller's connection closed).
    fn drop(&mut self) {
        let Some(state) = self.state.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (plugin, owner, why) = (self.plugin.clone(), self.owner.take(), std::mem::take(&mut self.why));
        rt.spawn(async move { plugin.release(&state, owner.as_deref(), &why).await });
    }
}
