using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>Native <c>sockaddr</c> encoding and decoding for the endpoints we support.</summary>
internal static class SocketAddresses
{
    /// <summary><c>sizeof(sockaddr_un)</c>: a 2-byte family and 108 bytes of path, NUL included.</summary>
    public const int MaxUnixPathBytes = 107;
    private const int MaxSize = 128;

    /// <summary>Encodes <paramref name="endPoint"/>; throws a typed error naming it when it cannot be used.</summary>
    public static byte[] ToNative(EndPoint endPoint, out int family)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        switch (endPoint)
        {
            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetwork:
            {
                family = Libc.AF_INET;
                byte[] a = new byte[16];
                BinaryPrimitives.WriteUInt16LittleEndian(a, Libc.AF_INET);
                BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), (ushort)ip.Port);
                ip.Address.TryWriteBytes(a.AsSpan(4, 4), out _);
                return a;
            }

            case IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetworkV6:
            {
                family = Libc.AF_INET6;
                byte[] a = new byte[28];
                BinaryPrimitives.WriteUInt16LittleEndian(a, Libc.AF_INET6);
                BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), (ushort)ip.Port);
                ip.Address.TryWriteBytes(a.AsSpan(8, 16), out _);
                BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(24), (uint)ip.Address.ScopeId);
                return a;
            }

            case UnixDomainSocketEndPoint unix:
                family = Libc.AF_UNIX;
                return UnixToNative(unix.ToString());

            default:
                throw new NotSupportedException($"PipeTransport connects and listens on IPEndPoint and UnixDomainSocketEndPoint, not {endPoint.GetType().Name} ({endPoint}).");
        }
    }

    /// <summary>Encodes a Unix socket path (a leading <c>@</c> or NUL makes it an abstract name).</summary>
    public static byte[] UnixToNative(string path)
    {
                bool isAbstract = path.Length > 0 && (path[0] == '@' || path[0] == '\0');
                byte[] name = Encoding.UTF8.GetBytes(isAbstract ? path[1..] : path);
                if (name.Length == 0 && !isAbstract)
                {
                    throw new ArgumentException("A Unix domain socket endpoint needs a path.", nameof(path));
                }

                if (name.Length > MaxUnixPathBytes)
                {
                    throw new PipeTransportException(Errno.ENAMETOOLONG, "socket address", path,
                        $"a Unix socket path is at most {MaxUnixPathBytes} bytes; this one has {name.Length}");
                }

                // Abstract names have no trailing NUL: the address length says where they end.
                byte[] a = new byte[2 + 1 + name.Length];
                BinaryPrimitives.WriteUInt16LittleEndian(a, Libc.AF_UNIX);
                if (isAbstract)
                {
                    a[2] = 0;
                    name.CopyTo(a, 3);
                }
                else
                {
                    name.CopyTo(a, 2);
                    a[^1] = 0;
                }

                return a;
    }

    /// <summary>How errors name an endpoint: <c>unix:/path</c>, <c>unix:@name</c>, <c>tcp:127.0.0.1:80</c>, <c>tcp:[::1]:80</c>.</summary>
    public static string Describe(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint unix => "unix:" + unix.ToString().Replace('\0', '@'),
        IPEndPoint ip => "tcp:" + ip,
        _ => endPoint.ToString() ?? endPoint.GetType().Name,
    };

    /// <summary>Decodes a native address; null for an unnamed Unix socket or an unknown family.</summary>
    public static EndPoint? FromNative(ReadOnlySpan<byte> address)
    {
        if (address.Length < 2)
        {
            return null;
        }

        switch (BinaryPrimitives.ReadUInt16LittleEndian(address))
        {
            case Libc.AF_INET when address.Length >= 8:
                return new IPEndPoint(new IPAddress(address.Slice(4, 4)), BinaryPrimitives.ReadUInt16BigEndian(address[2..]));
            case Libc.AF_INET6 when address.Length >= 28:
                return new IPEndPoint(new IPAddress(address.Slice(8, 16), BinaryPrimitives.ReadUInt32LittleEndian(address[24..])), BinaryPrimitives.ReadUInt16BigEndian(address[2..]));
            case Libc.AF_UNIX when address.Length > 2:
            {
                ReadOnlySpan<byte> path = address[2..];
                if (path[0] == 0)
                {
                    return new UnixDomainSocketEndPoint("\0" + Encoding.UTF8.GetString(path[1..]));
                }

                int end = path.IndexOf((byte)0);
                return new UnixDomainSocketEndPoint(Encoding.UTF8.GetString(end < 0 ? path : path[..end]));
            }

            default:
                return null;
        }
    }

    /// <summary>The socket's family (<c>getsockname</c>), or -1.</summary>
    public static int Family(int fd)
    {
        Span<byte> buffer = stackalloc byte[MaxSize];
        int len = Sys.GetName(fd, false, buffer);
        return len >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(buffer) : -1;
    }

    /// <summary>The local or peer address of a socket channel; null for other fds or when unknown.</summary>
    public static EndPoint? TryName(FdChannel channel, bool peer)
    {
        if (channel.Kind != FdKind.Socket)
        {
            return null;
        }

        byte[] buffer = new byte[MaxSize];
        int len = channel.WithFd(peer, (p, fd) => Sys.GetName(fd, p, buffer));
        return len > 0 ? FromNative(buffer.AsSpan(0, len)) : null;
    }
}
