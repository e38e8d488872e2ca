DROP INDEX decision_embedding IF EXISTS
