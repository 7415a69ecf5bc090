// libFuzzer target "webp" (Fuzz/README.md): the function under test is FuzzTargets.webp.
import FuzzTargets

FuzzTargets.run("webp")
