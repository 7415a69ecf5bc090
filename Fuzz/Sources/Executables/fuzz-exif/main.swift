// libFuzzer target "exif" (Fuzz/README.md): the function under test is FuzzTargets.exif.
import FuzzTargets

FuzzTargets.run("exif")
