package contextgraph;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.io.ByteUnit;

/**
 * Starts a real Neo4j Community server (the same engine as the neo4j:5.26 image) with a Bolt
 * connector on 127.0.0.1:PORT and a data directory of the caller's choosing.
 *
 * Usage: Neo4jLauncher PORT DATA_DIR PASSWORD
 *
 * Prints "READY bolt://127.0.0.1:PORT" on stdout once Bolt accepts connections. Stops cleanly
 * when its standard input closes (the parent went away) or on SIGTERM.
 *
 * APOC core, when its jar is on the classpath, is loaded as a plugin: an embedded DBMS finds
 * APOC's extension factory by service loading (so the jar must be on the classpath) and its
 * procedures in the plugins directory (so the jar is copied to DATA_DIR/plugins); `apoc.*` may
 * run unrestricted, as on a server with the APOC plugin installed. Each transaction may hold at
 * most 256 MiB of heap (`db.memory.transaction.max`), so one query cannot exhaust the server.
 */
public final class Neo4jLauncher {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Neo4jLauncher PORT DATA_DIR PASSWORD");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        Path home = Path.of(args[1]).toAbsolutePath();
        String password = args[2];

        Path plugins = home.resolve("plugins");
        Files.createDirectories(plugins);
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path jar = Path.of(entry);
            if (jar.getFileName() != null && jar.getFileName().toString().startsWith("apoc-")) {
                Files.copy(jar, plugins.resolve(jar.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
        }

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(GraphDatabaseSettings.plugin_dir, plugins)
                .setConfig(GraphDatabaseSettings.procedure_unrestricted, List.of("apoc.*"))
                .setConfig(GraphDatabaseSettings.memory_transaction_max_size, ByteUnit.mebiBytes(256))
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(512))
                .build();

        // Embedded access bypasses auth, so the initial password can be set without a login.
        // On a restart over the same data it is already set, and Neo4j refuses "the same again".
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED",
                    Map.of("password", password));
        } catch (RuntimeException e) {
            if (!String.valueOf(e.getMessage()).contains("cannot be the same")) {
                throw e;
            }
        }

        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stop.countDown();
        }));
        System.out.println("READY bolt://127.0.0.1:" + port);
        System.out.flush();

        Thread stdinWatcher = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // Drain until the parent closes the pipe.
                }
            } catch (IOException ignored) {
                // A broken pipe means the parent is gone, same as end of input.
            }
            System.exit(0);
        });
        stdinWatcher.setDaemon(true);
        stdinWatcher.start();
        stop.await();
    }
}
