namespace PipeTransport.Kestrel;

/// <summary>
/// The credentials of the process at the other end of a Unix socket connection (<c>SO_PEERCRED</c>),
/// taken when it connected. Read it in middleware with
/// <c>context.Features.Get&lt;IPeerCredentialsFeature&gt;()?.PeerCredentials</c>.
/// </summary>
public interface IPeerCredentialsFeature
{
    /// <summary>
    /// The peer's process id, user id and group id, or null when the connection is not a Unix socket
    /// (TCP, FIFO pair).
    /// </summary>
    PeerCredentials? PeerCredentials { get; }
}
