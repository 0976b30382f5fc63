using Mono.Unix.Native;
using PipeTransport.Endpoints;
using PipeTransport.Interop;

namespace PipeTransport.HandOff;

/// <summary>The successor's side of a hand-off.</summary>
public static class HandOffClient
{
    /// <summary>
    /// Connects to the <see cref="HandOffServer"/> at <paramref name="path"/> and receives what it offers.
    /// The predecessor keeps serving until <see cref="HandOffTakeover.CommitAsync"/>.
    /// </summary>
    /// <param name="path">The hand-off socket.</param>
    /// <param name="cancellationToken">Cancels the hand-off (the predecessor resumes).</param>
    /// <returns>The offer, or null when nothing serves at <paramref name="path"/> (<c>ENOENT</c>, <c>ECONNREFUSED</c>): a first start.</returns>
    /// <exception cref="PipeTransportException">Any other error (not a socket, <c>EACCES</c>, <c>ENAMETOOLONG</c>, a refused peer, a malformed answer), naming the path.</exception>
    public static async Task<HandOffTakeover?> TakeOverAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] address = SocketAddresses.UnixToNative(path);

        // A path that is something else than a socket is a mistake, not a first start (connect says ECONNREFUSED).
        if (Sys.Stat(path, followLinks: true, out uint type, out _) == 0 && type != Libc.S_IFSOCK)
        {
            throw new PipeTransportException(Errno.ENOTSOCK, "connect", path, "not a socket");
        }

        int fd = Sys.SeqPacketSocket();
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "socket", path);
        }

        int r;
        while ((r = Sys.Connect(fd, address)) == -Libc.EAGAIN)
        {
            // The server's backlog is full (another successor is being served): try again shortly.
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }

        if (r < 0)
        {
            Libc.Close(fd);
            if (r is -Libc.ENOENT or -Libc.ECONNREFUSED)
            {
                return null;
            }

            throw PipeTransportException.FromResult(r, "connect", path);
        }

        HandOffChannel channel = HandOffChannel.Adopt(fd, path);
        var fds = new List<SafeFdHandle>();
        try
        {
            PeerCredentials server = channel.Peer();
            if (server.UserId != Sys.EffectiveUserId())
            {
                throw new PipeTransportException(Errno.EPERM, "hand-off", path, $"the server runs as uid {server.UserId}, not as ours ({Sys.EffectiveUserId()})");
            }

            await channel.SendAsync(HandOffChannel.Hello, cancellationToken).ConfigureAwait(false);
            HandOffMessage? offer = await channel.ReceiveAsync(cancellationToken).ConfigureAwait(false);
            if (offer is null)
            {
                throw new PipeTransportException(Errno.EPERM, "hand-off", path,
                    "the server closed the connection before its offer (a server refuses a process of another user)");
            }

            if (offer.Value.Type != HandOffChannel.Offer)
            {
                HandOffChannel.Close(offer.Value.Fds);
                throw offer.Value.Type == HandOffChannel.Abort ? channel.Aborted() : channel.Malformed($"message type {offer.Value.Type} where the offer was expected");
            }

            fds.AddRange(offer.Value.Fds);
            List<HandOffEntry> entries = channel.DecodeOffer(offer.Value.Data);
            int expected = entries.Sum(e => e.FdCount);
            while (fds.Count < expected)
            {
                HandOffMessage more = await channel.ExpectAsync(HandOffChannel.Fds, "the offer's fds", cancellationToken).ConfigureAwait(false);
                fds.AddRange(more.Fds);
                if (more.Fds.Length == 0)
                {
                    throw channel.Malformed("a message of fds without fds");
                }
            }

            if (fds.Count != expected)
            {
                throw channel.Malformed($"{fds.Count} fds for an offer of {expected}");
            }

            var offered = new Dictionary<string, (HandOffKind, SafeFdHandle[])>();
            int at = 0;
            foreach (HandOffEntry entry in entries)
            {
                offered[entry.Name] = (entry.Kind, fds.GetRange(at, entry.FdCount).ToArray());
                at += entry.FdCount;
            }

            return new HandOffTakeover(channel, offered);
        }
        catch
        {
            HandOffChannel.Close(fds);
            channel.Dispose();
            throw;
        }
    }
}
