"""`vsplab audit`: drift between the VSD's intent, the VSCs' desired flows and the datapaths' installed
flows, each difference named by its VSD object; `repair` resyncs only what differs (vsplab/audit/run.py)."""

from vsplab.audit.report import AuditReport, FlowDrift, IntentFinding, Repair
from vsplab.audit.run import AuditError, audit_lab, repair

__all__ = ["AuditError", "AuditReport", "FlowDrift", "IntentFinding", "Repair", "audit_lab", "repair"]
