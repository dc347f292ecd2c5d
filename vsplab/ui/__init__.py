"""The teaching view: a web page that shows a running lab (topology, BGP, policy matrix, a packet's
walk table by table, flows, the rollout), read through the lab's, the VSD's and the VSCs' own
interfaces. `vsplab run SCENARIO --ui`, `vsplab ui --vsd URL`; vsplab/ui/server.py lists the pages."""
