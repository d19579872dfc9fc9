"""The ``.dvq`` stream and the packet format, without the model and without torch: the container
(:mod:`.bitstream`), its header (:mod:`.streamheader`, the version-1 JSON in :mod:`.streamjson`), code
packing (:mod:`.bitpack`), stream files (:mod:`.streamfile`), stage dropping (:mod:`.transcode`) and
real-time packets (:mod:`.packets`). Import the submodules directly; this package imports nothing."""
