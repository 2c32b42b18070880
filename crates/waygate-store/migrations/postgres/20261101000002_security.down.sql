DROP TABLE tool_pins;
DROP TABLE audit_log;
DROP TABLE api_keys;
