"""Audio and file I/O: audio files (:mod:`.audio`), atomic outputs (:mod:`.fileio`) and outputs
written through (:mod:`.directout`: stdout, FIFOs, devices). Import the submodules directly; this
package imports nothing."""
