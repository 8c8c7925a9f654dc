# skiff_gen2_virtio: the device side of virtio for the gen2 VMM — the device thread's epoll
# loop, split virtqueues, the virtio-mmio transport, and the blk, net and console devices.
add_library(skiff_gen2_virtio STATIC
  ${CMAKE_CURRENT_LIST_DIR}/devices/event_loop.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/queue.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/mmio_transport.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/blk.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/tap.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/net.cc
  ${CMAKE_CURRENT_LIST_DIR}/devices/virtio/console.cc
)
target_link_libraries(skiff_gen2_virtio PUBLIC skiff_gen2_memory skiff_common
                                               absl::synchronization spdlog::spdlog)
