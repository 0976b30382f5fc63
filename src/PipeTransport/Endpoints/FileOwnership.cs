using System.Globalization;
using Mono.Unix.Native;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>
/// The owner and group given to a file we create (a Unix socket file, a FIFO). Names are resolved when the
/// options are read, before anything exists, so a typo fails without leaving a file behind; the ids are
/// applied with <c>chown(2)</c> right after the file appears (for a socket: between bind and listen, when
/// nobody can connect yet).
/// </summary>
internal sealed class FileOwnership
{
    /// <summary><c>chown(2)</c>'s <c>(uid_t)-1</c>: leave this one as it is.</summary>
    private const uint Unchanged = uint.MaxValue;

    /// <summary>Changes nothing.</summary>
    public static readonly FileOwnership None = new(Unchanged, Unchanged, "chown");

    private readonly uint _uid;
    private readonly uint _gid;

    /// <summary>What chown(1) would be asked to do (<c>chown app:www-data</c>), the operation named by errors.</summary>
    private readonly string _operation;

    private FileOwnership(uint uid, uint gid, string operation)
    {
        _uid = uid;
        _gid = gid;
        _operation = operation;
    }

    /// <summary>
    /// Resolves an owner and a group, each a name or a numeric id (null or empty: unchanged).
    /// </summary>
    /// <param name="owner">User name or uid.</param>
    /// <param name="group">Group name or gid.</param>
    /// <param name="target">The file (or endpoint) they are for, named by the error.</param>
    /// <exception cref="PipeTransportException">No such user or group (<c>EINVAL</c>), or the lookup failed.</exception>
    public static FileOwnership Resolve(string? owner, string? group, string target)
    {
        if (string.IsNullOrEmpty(owner) && string.IsNullOrEmpty(group))
        {
            return None;
        }

        string operation = string.IsNullOrEmpty(group) ? $"chown {owner}" : $"chown {owner}:{group}";
        uint uid = string.IsNullOrEmpty(owner) ? Unchanged : LookUp(owner, user: true, operation, target);
        uint gid = string.IsNullOrEmpty(group) ? Unchanged : LookUp(group, user: false, operation, target);
        return new FileOwnership(uid, gid, operation);
    }

    /// <summary>Gives <paramref name="path"/> the owner and group; returns the error instead of throwing, so the caller can clean up first.</summary>
    public PipeTransportException? Apply(string path)
    {
        if (_uid == Unchanged && _gid == Unchanged)
        {
            return null;
        }

        int r = Sys.Chown(path, _uid, _gid);
        return r < 0 ? PipeTransportException.FromResult(r, _operation, path) : null;
    }

    private static uint LookUp(string nameOrId, bool user, string operation, string target)
    {
        // All digits: an id, taken as it is (a name service may not know it, as for a container's ids).
        if (uint.TryParse(nameOrId, NumberStyles.None, CultureInfo.InvariantCulture, out uint id))
        {
            return id;
        }

        int r = user ? Sys.GetUserId(nameOrId, out id) : Sys.GetGroupId(nameOrId, out id);
        return r switch
        {
            1 => id,
            0 => throw new PipeTransportException(Errno.EINVAL, operation, target, user ? $"no such user '{nameOrId}'" : $"no such group '{nameOrId}'"),
            _ => throw PipeTransportException.FromResult(r, operation, target),
        };
    }
}
