-- The assistant's SQL tracker store gets a database of its own, beside Faro's (docker-compose.yml:
-- RASA_TRACKER_DB=rasa).  PostgreSQL's image runs this once, when its volume is first created;
-- on a volume created before this file existed, run it by hand:
--   docker compose exec postgres createdb -U faro rasa
CREATE DATABASE rasa;
