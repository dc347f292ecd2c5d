"""Policy analysis over compiled pipelines: `vsplab diff` (what an edit changes), `vsplab explain`
(why one packet is delivered or dropped on a running lab) and `vsplab lint` (entries that can never
matter, and what the policy costs in flows).

Everything here compiles a policy state (VSD objects + where the endpoints sit) with the VSC's own
compiler (`vsc.programmer.Programmer`), loads the flows into simulated switches (`vrs.sim`) and traces
packets through them: verdicts are read off the pipelines the VRSs would hold, never re-derived from
the ACL entries by a second implementation of their semantics.
"""
