DROP TABLE meta;
DROP TABLE upstreams;
DROP TABLE plugin_state;
DROP TABLE config_snapshots;
