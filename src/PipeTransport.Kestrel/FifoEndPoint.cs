using System.Net;
using System.Net.Sockets;

namespace PipeTransport.Kestrel;

/// <summary>
/// An endpoint that serves HTTP over a pair of FIFOs: the server reads requests from
/// <see cref="ReadPath"/> and writes responses to <see cref="WritePath"/>. One connection at a time;
/// when the client closes its ends, the next client is accepted on the same FIFOs. Missing FIFOs are
/// created (with <see cref="PipeTransportOptions.UnixSocketFileMode"/>) and removed again when the
/// server stops. Listen with <c>kestrel.Listen(new FifoEndPoint("in.fifo", "out.fifo"))</c>.
/// </summary>
public sealed class FifoEndPoint : EndPoint
{
    /// <summary>Creates an endpoint for the FIFO pair.</summary>
    /// <param name="readPath">The FIFO the server reads requests from (the client writes to it).</param>
    /// <param name="writePath">The FIFO the server writes responses to (the client reads from it).</param>
    public FifoEndPoint(string readPath, string writePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(readPath);
        ArgumentException.ThrowIfNullOrEmpty(writePath);
        if (string.Equals(Path.GetFullPath(readPath), Path.GetFullPath(writePath), StringComparison.Ordinal))
        {
            throw new ArgumentException("The read and write FIFOs must be different files.", nameof(writePath));
        }
        ReadPath = readPath;
        WritePath = writePath;
    }

    /// <summary>The FIFO the server reads requests from.</summary>
    public string ReadPath { get; }

    /// <summary>The FIFO the server writes responses to.</summary>
    public string WritePath { get; }

    /// <inheritdoc />
    public override AddressFamily AddressFamily => AddressFamily.Unspecified;

    /// <summary>Kestrel shows this in its listening addresses: <c>http://fifo:READ|WRITE</c>.</summary>
    public override string ToString() => $"fifo:{ReadPath}|{WritePath}";

    /// <inheritdoc />
    public override bool Equals(object? obj) =>
        obj is FifoEndPoint other && other.ReadPath == ReadPath && other.WritePath == WritePath;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(ReadPath, WritePath);
}
