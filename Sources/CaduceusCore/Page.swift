/// A page of a cursor-paginated list.
public struct Page<Item: Sendable>: Sendable {
    /// The items, in ID order.
    public var items: [Item]
    /// The cursor for the next page, nil on the last.
    public var next: String?

    /// Creates a page.
    public init(items: [Item], next: String?) {
        self.items = items
        self.next = next
    }
}
