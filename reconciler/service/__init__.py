"""What AWS Data Pipeline is, as the rest of the reconciler needs to know it: its object model
and limits (``model``), its ``#{...}`` expressions (``expressions``) and its web service quotas
(``quotas``). Pure, at the bottom of the layers: the compiler, the planner, the live layer and
the embedded service all learn the service's rules here, and none of them from another."""
