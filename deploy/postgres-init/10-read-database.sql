-- Run by the postgres image once, when it initialises an empty data volume (compose.yaml mounts this folder
-- at /docker-entrypoint-initdb.d). The Kafka-fed read models get a database of their own, beside the store's.
CREATE DATABASE gridcase_read OWNER gridcase;
