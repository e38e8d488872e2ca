// Retired lessons (contextgraph.supersede); idempotent.
CREATE CONSTRAINT retired_lesson_key IF NOT EXISTS FOR (n:RetiredLesson) REQUIRE n.key IS UNIQUE;
