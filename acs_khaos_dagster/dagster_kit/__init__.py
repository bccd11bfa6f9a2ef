"""The integration's Dagster toolkit: what ``defs/`` declares its definitions with.

Nothing here is an asset, check, job, sensor or schedule (``test_code_layout`` holds it):

- ``results``: a flow's figures as metadata, a check rule's verdict as a check result;
- ``tables``: a table asset's Dagster type from its pandera model;
- ``checks`` and ``pandera_checks``: checks per partition, their owners, and one pandera
  check per table asset;
- ``runs``: a sensor's look-up of one job's runs of this brand;
- ``brand``: the definitions as one brand's code location.
"""
