DROP INDEX decision_text IF EXISTS
