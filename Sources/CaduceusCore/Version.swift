/// This build of Caduceus.
public enum CaduceusVersion {
    /// The release, as `cluster status` shows each replica's.
    public static let current = "0.7.0"
}
