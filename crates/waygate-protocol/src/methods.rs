//! JSON-RPC method names, so no string literal for a method appears twice in the tree.

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "notifications/initialized";
pub const DISCOVER: &str = "server/discover";
pub const PING: &str = "ping";
pub const TOOLS_LIST: &str = "tools/list";
pub const TOOLS_CALL: &str = "tools/call";
pub const RESOURCES_LIST: &str = "resources/list";
pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
pub const RESOURCES_READ: &str = "resources/read";
pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
pub const PROMPTS_LIST: &str = "prompts/list";
pub const PROMPTS_GET: &str = "prompts/get";
pub const COMPLETE: &str = "completion/complete";
pub const SET_LEVEL: &str = "logging/setLevel";
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
pub const TASKS_GET: &str = "tasks/get";
pub const TASKS_RESULT: &str = "tasks/result";
pub const TASKS_LIST: &str = "tasks/list";
pub const TASKS_CANCEL: &str = "tasks/cancel";
pub const TASKS_UPDATE: &str = "tasks/update";

pub const N_CANCELLED: &str = "notifications/cancelled";
pub const N_PROGRESS: &str = "notifications/progress";
pub const N_MESSAGE: &str = "notifications/message";
pub const N_TOOLS_CHANGED: &str = "notifications/tools/list_changed";
pub const N_PROMPTS_CHANGED: &str = "notifications/prompts/list_changed";
pub const N_RESOURCES_CHANGED: &str = "notifications/resources/list_changed";
pub const N_RESOURCE_UPDATED: &str = "notifications/resources/updated";
pub const N_ROOTS_CHANGED: &str = "notifications/roots/list_changed";
pub const N_SUBSCRIPTIONS_ACK: &str = "notifications/subscriptions/acknowledged";
pub const N_TASKS: &str = "notifications/tasks";
pub const N_TASK_STATUS: &str = "notifications/tasks/status";

pub const SAMPLING_CREATE: &str = "sampling/createMessage";
pub const ELICITATION_CREATE: &str = "elicitation/create";
pub const ROOTS_LIST: &str = "roots/list";

/// Methods that 2026-07-28 removed; a modern request naming one gets 404 / -32601.
pub const REMOVED_IN_MODERN: [&str; 6] = [
    INITIALIZE,
    PING,
    SET_LEVEL,
    RESOURCES_SUBSCRIBE,
    RESOURCES_UNSUBSCRIBE,
    TASKS_LIST,
];

/// The only methods allowed to answer with `resultType: "input_required"` (MRTR).
pub fn may_require_input(method: &str) -> bool {
    matches!(method, TOOLS_CALL | RESOURCES_READ | PROMPTS_GET)
}

/// Results that carry `ttlMs` / `cacheScope` in 2026-07-28.
pub fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        DISCOVER | TOOLS_LIST | PROMPTS_LIST | RESOURCES_LIST | RESOURCES_TEMPLATES_LIST | RESOURCES_READ
    )
}
