// Whether the graph holds anything read from Airflow (an unversioned graph with data is version 1).
MATCH (d:Dag)
WITH count(d) AS dags
MATCH (x:Decision)
WITH dags, count(x) AS decisions
RETURN dags + decisions AS n
