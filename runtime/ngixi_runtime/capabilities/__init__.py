"""Host capabilities, one module each (named in registry.py): what it grants a guest, its options and ceiling,
and its host implementation; context.py and linking.py are the host side of one instance, base.py and
component.py what the capabilities share."""
