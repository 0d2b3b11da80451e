"""Trust: signature checks against the operator's trust file, rollback state, operator policy."""
