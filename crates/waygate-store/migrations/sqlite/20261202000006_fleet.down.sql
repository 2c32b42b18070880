DROP TABLE tasks;
DROP TABLE pending_answers;
DROP TABLE sessions;
