namespace PipeTransport;

/// <summary>The process at the other end of a Unix domain socket, as the kernel recorded it at connect time (<c>SO_PEERCRED</c>).</summary>
/// <param name="ProcessId">The peer's pid.</param>
/// <param name="UserId">The peer's effective uid.</param>
/// <param name="GroupId">The peer's effective gid.</param>
public readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId);
