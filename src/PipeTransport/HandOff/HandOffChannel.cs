using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Interop;

namespace PipeTransport.HandOff;

/// <summary>One message of the hand-off protocol and the fds that came with it (owned by the receiver).</summary>
internal readonly record struct HandOffMessage(byte[] Data, SafeFdHandle[] Fds)
{
    public byte Type => Data[0];
}

/// <summary>What one offered name carries.</summary>
internal enum HandOffKind : byte
{
    Listener = 1,
    FifoReader = 2,
}

/// <summary>One entry of an offer: its name, kind and how many of the offer's fds are its.</summary>
internal readonly record struct HandOffEntry(string Name, HandOffKind Kind, int FdCount);

/// <summary>
/// A connected <c>SOCK_SEQPACKET</c> hand-off socket on the reactor: one call sends or receives one
/// message, fds attached. Every message starts with its type and the protocol version.
/// </summary>
internal sealed class HandOffChannel : IDisposable
{
    public const byte Version = 1;
    public const byte Hello = 1;
    public const byte Offer = 2;
    public const byte Fds = 3;
    public const byte Commit = 4;
    public const byte Done = 5;
    public const byte Abort = 6;

    /// <summary>Fds per message, below the kernel's 253 (<c>SCM_MAX_FD</c>).</summary>
    public const int MaxFdsPerMessage = 200;

    private const int MaxMessage = 64 * 1024;
    private const int MaxNameBytes = 255;

    private readonly FdChannel _channel;
    private readonly string _path;

    private HandOffChannel(FdChannel channel, string path)
    {
        _channel = channel;
        _path = path;
    }

    /// <summary>Takes a connected socket this library made (non-blocking, close-on-exec).</summary>
    public static HandOffChannel Adopt(int fd, string path) =>
        new(FdChannel.AdoptNew(new SafeFdHandle(fd), FdKind.Socket, ReactorGroup.Default.Next(), path), path);

    /// <summary>The process at the other end (<c>SO_PEERCRED</c>).</summary>
    public PeerCredentials Peer()
    {
        PeerCredentials peer = default;
        int r = _channel.WithFd(0, (_, fd) =>
        {
            int got = Sys.GetPeerCredentials(fd, out int pid, out uint uid, out uint gid);
            peer = new PeerCredentials(pid, uid, gid);
            return got;
        });
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "getsockopt(SO_PEERCRED)", _path);
        }

        return peer;
    }

    public ValueTask SendAsync(byte type, CancellationToken cancellationToken) => SendAsync([type, Version], [], cancellationToken);

    /// <summary>Sends one message; the fds are duplicated into the message by the kernel (the caller still closes its own).</summary>
    public async ValueTask SendAsync(byte[] message, SafeFdHandle[] fds, CancellationToken cancellationToken)
    {
        int[] numbers = Array.ConvertAll(fds, f => f.Fd);
        while (true)
        {
            nint r = _channel.WithFd((message, numbers), static (m, fd) => (int)Sys.SendWithFds(fd, m.message, m.numbers));
            if (r >= 0)
            {
                return;
            }

            if (r != -Libc.EAGAIN)
            {
                throw PipeTransportException.FromResult(r, "sendmsg", _path);
            }

            await _channel.Registration!.Write.WaitAsync(true, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Sends a message without waiting (the socket's buffer has room for it, or it is not sent): for a goodbye.</summary>
    public void TrySend(byte type) =>
        _channel.WithFd(type, static (t, fd) => (int)Sys.SendWithFds(fd, [t, Version], []));

    /// <summary>The next message, or null at EOF. A message that does not fit (or whose fds do not) is a protocol error.</summary>
    public async ValueTask<HandOffMessage?> ReceiveAsync(CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[MaxMessage];
        int[] fds = new int[256];
        while (true)
        {
            int count = 0;
            bool truncated = false;
            nint r = _channel.WithFd(0, (_, fd) => (int)Sys.ReceiveWithFds(fd, buffer, fds, out count, out truncated));
            var handles = new SafeFdHandle[count];
            for (int i = 0; i < count; i++)
            {
                handles[i] = new SafeFdHandle(fds[i]);
            }

            if (r == -Libc.EAGAIN)
            {
                await _channel.Registration!.Read.WaitAsync(true, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (r < 0)
            {
                throw PipeTransportException.FromResult(r, "recvmsg", _path);
            }

            if (r == 0)
            {
                Close(handles);
                return null; // EOF (the protocol never sends an empty message)
            }

            if (truncated || r < 2 || buffer[1] != Version)
            {
                Close(handles);
                throw Malformed(truncated ? "a message or its fds did not fit" : r < 2 ? "a message shorter than its header" : $"protocol version {buffer[1]}, not {Version}");
            }

            return new HandOffMessage(buffer.AsSpan(0, (int)r).ToArray(), handles);
        }
    }

    /// <summary>Receives the next message and checks its type; EOF is an error naming <paramref name="waitingFor"/>.</summary>
    public async ValueTask<HandOffMessage> ExpectAsync(byte type, string waitingFor, CancellationToken cancellationToken)
    {
        HandOffMessage message = await ReceiveAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new PipeTransportException(Errno.ECONNRESET, "hand-off", _path, $"the peer closed the connection before {waitingFor}");
        if (message.Type != type)
        {
            Close(message.Fds);
            throw message.Type == Abort ? Aborted() : Malformed($"message type {message.Type} where {waitingFor} was expected");
        }

        return message;
    }

    /// <summary>The predecessor gave this hand-off up (its timeout, or a failure on its side) and serves on.</summary>
    public PipeTransportException Aborted() =>
        new(Errno.ECONNABORTED, "hand-off", _path, "the predecessor dropped this hand-off (timeout or failure before the commit) and serves on");

    public PipeTransportException Malformed(string detail) => new(Errno.EPROTO, "hand-off", _path, detail);

    public void Dispose() => _channel.Close();

    public static void Close(IEnumerable<SafeHandle> handles)
    {
        foreach (SafeHandle handle in handles)
        {
            handle.Dispose();
        }
    }

    /// <summary>OFFER: entry count (u16), then per entry kind (u8), fd count (u16), name length (u8), name (UTF-8).</summary>
    public static byte[] EncodeOffer(IReadOnlyList<HandOffEntry> entries)
    {
        var bytes = new List<byte> { Offer, Version, 0, 0 };
        BinaryPrimitives.WriteUInt16LittleEndian(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes).Slice(2), (ushort)entries.Count);
        foreach (HandOffEntry entry in entries)
        {
            byte[] name = Encoding.UTF8.GetBytes(entry.Name);
            bytes.Add((byte)entry.Kind);
            bytes.Add((byte)entry.FdCount);
            bytes.Add((byte)(entry.FdCount >> 8));
            bytes.Add((byte)name.Length);
            bytes.AddRange(name);
        }

        return bytes.ToArray();
    }

    public List<HandOffEntry> DecodeOffer(byte[] data)
    {
        var entries = new List<HandOffEntry>();
        if (data.Length < 4)
        {
            throw Malformed("a short offer");
        }

        int count = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(2));
        int at = 4;
        for (int i = 0; i < count; i++)
        {
            if (at + 4 > data.Length)
            {
                throw Malformed("a short offer");
            }

            var kind = (HandOffKind)data[at];
            int fdCount = data[at + 1] | (data[at + 2] << 8);
            int nameLength = data[at + 3];
            at += 4;
            if (at + nameLength > data.Length || kind is not (HandOffKind.Listener or HandOffKind.FifoReader) || fdCount == 0
                || (kind == HandOffKind.FifoReader && fdCount > 2))
            {
                throw Malformed("a malformed offer entry");
            }

            entries.Add(new HandOffEntry(Encoding.UTF8.GetString(data, at, nameLength), kind, fdCount));
            at += nameLength;
        }

        if (at != data.Length)
        {
            throw Malformed("bytes after the offer's entries");
        }

        return entries;
    }

    /// <summary>Checks a name before it is offered.</summary>
    public static void CheckName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (Encoding.UTF8.GetByteCount(name) > MaxNameBytes)
        {
            throw new ArgumentException($"A hand-off name is at most {MaxNameBytes} bytes of UTF-8.", nameof(name));
        }
    }
}
