/// A shuffle that gives the same order for the same seed on every machine and Swift version
/// (Swift's own `shuffle` uses an unspecified generator): SplitMix64 drives a Fisher-Yates shuffle.
public struct SeededShuffle {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits (SplitMix64).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in 0..<bound, without modulo bias (Lemire's method).
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        while true {
            let (hi, lo) = next().multipliedFullWidth(by: b)
            if lo >= (0 &- b) % b { return Int(hi) }
        }
    }

    public func shuffled<T>(_ items: [T]) -> [T] {
        var copy = self
        var out = items
        var i = out.count - 1
        while i > 0 {
            out.swapAt(i, copy.below(i + 1))
            i -= 1
        }
        return out
    }
}
