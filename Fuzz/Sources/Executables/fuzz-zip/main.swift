// libFuzzer target "zip" (Fuzz/README.md): the function under test is FuzzTargets.zip.
import FuzzTargets

FuzzTargets.run("zip")
