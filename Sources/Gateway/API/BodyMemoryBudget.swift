/// A byte budget shared by every request that reads a body: a request reserves the most
/// memory its body and what is parsed from it can take before it reads anything, and
/// waits (first come, first served) while the budget is spent. So bodies that are cheap
/// to send and costly to hold (8 KiB of gzip that inflate to 8 MiB of JSON) cannot add
/// up past `limits.body_memory_bytes`, however many arrive at once.
final class BodyMemoryBudget: Sendable {
    private struct State {
        var available: Int
        var waiting: [(bytes: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    let capacity: Int
    private let state: Locked<State>

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        self.state = Locked(State(available: max(capacity, 1)))
    }

    /// Runs `body` holding `bytes` of the budget (at most all of it: a request larger than
    /// the budget runs alone).
    func withReservation<T: Sendable>(_ bytes: Int, _ body: () async throws -> T) async throws -> T {
        let amount = min(max(bytes, 0), capacity)
        await acquire(amount)
        defer { release(amount) }
        return try await body()
    }

    /// Bytes not reserved right now.
    var available: Int { state.withLock { $0.available } }

    private func acquire(_ amount: Int) async {
        let granted = state.withLock { state in
            guard state.waiting.isEmpty, state.available >= amount else { return false }
            state.available -= amount
            return true
        }
        if granted { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let grantedNow = state.withLock { state in
                if state.waiting.isEmpty, state.available >= amount {
                    state.available -= amount
                    return true
                }
                state.waiting.append((amount, continuation))
                return false
            }
            if grantedNow { continuation.resume() }
        }
    }

    private func release(_ amount: Int) {
        let ready = state.withLock { state in
            state.available += amount
            var ready: [CheckedContinuation<Void, Never>] = []
            while let first = state.waiting.first, first.bytes <= state.available {
                state.available -= first.bytes
                ready.append(first.continuation)
                state.waiting.removeFirst()
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }
}
