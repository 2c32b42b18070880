DROP TABLE tool_pins;
