import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Peer addresses as the per-peer limits see them.
enum PeerAddress {
    /// The key a peer is counted under by the per-peer limits (connections, failed
    /// authentications): an IPv4 address as it is, an IPv4-mapped IPv6 address as its IPv4
    /// address, and any other IPv6 address as its /64, since one host commonly holds a
    /// whole /64 and could otherwise count as 2^64 peers.
    static func limitKey(_ address: String) -> String {
        // IPv4 (the common case) is returned without parsing.
        guard address.utf8.contains(UInt8(ascii: ":")), let bytes = parse(address) else { return address }
        guard bytes.count == 16 else { return format(bytes) }
        var key = ""
        for group in 0..<4 {
            if group > 0 { key += ":" }
            key += String(UInt16(bytes[group * 2]) << 8 | UInt16(bytes[group * 2 + 1]), radix: 16)
        }
        return key + "::/64"
    }

    /// An IP address as 4 bytes (IPv4, or an IPv4-mapped IPv6 address) or 16 (IPv6);
    /// `nil` when `text` is neither. Brackets around an IPv6 address are accepted.
    static func parse(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(text), &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, String(text), &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
        return bytes
    }

    /// The text form of 4 or 16 address bytes.
    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let ok = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) } != nil
        return ok ? String(cString: buffer) : bytes.map(String.init).joined(separator: ".")
    }

    /// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`).
    struct Block: Sendable, Equatable {
        let network: [UInt8]
        let prefixLength: Int

        init?(_ text: String) {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2, let bytes = PeerAddress.parse(String(parts[0])) else { return nil }
            let length: Int
            if parts.count == 2 {
                guard let given = Int(parts[1]), (0...bytes.count * 8).contains(given) else { return nil }
                // An IPv4-mapped block (::ffff:10.0.0.0/104) counts in IPv4 bits.
                length = given
            } else {
                length = bytes.count * 8
            }
            network = bytes
            prefixLength = length
        }

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == network.count else { return false }
            var bits = prefixLength
            for index in 0..<network.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xFF : ~(0xFF >> UInt8(bits))
                if address[index] & mask != network[index] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    /// The client's address for a request from `peer`: `peer` itself unless it is one of
    /// the `trusted` proxies, in which case the `X-Forwarded-For` values are read from the
    /// right (the entry the nearest proxy appended) past every trusted hop, and the first
    /// address that is not a trusted proxy is the client. An entry that is not an address
    /// stops the walk at the last hop known good; what lies left of the client's entry
    /// is the client's own claim and is never used.
    static func clientAddress(peer: String, forwardedFor: [String], trusted: [Block]) -> String {
        guard !trusted.isEmpty, !forwardedFor.isEmpty, let peerBytes = parse(peer),
            trusted.contains(where: { $0.contains(peerBytes) })
        else { return peer }
        var current = peer
        for value in forwardedFor.reversed() {
            for entry in value.split(separator: ",").reversed() {
                guard let bytes = parse(entry.trimmingCharacters(in: .whitespaces)) else { return current }
                current = format(bytes)
                if !trusted.contains(where: { $0.contains(bytes) }) { return current }
            }
        }
        return current
    }
}
