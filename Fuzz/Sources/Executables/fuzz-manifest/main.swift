// libFuzzer target "manifest" (Fuzz/README.md): the function under test is FuzzTargets.manifest.
import FuzzTargets

FuzzTargets.run("manifest")
