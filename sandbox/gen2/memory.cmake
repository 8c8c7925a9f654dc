# skiff_gen2_memory: the guest's RAM as host mappings, with bounds-checked access.
add_library(skiff_gen2_memory STATIC ${CMAKE_CURRENT_LIST_DIR}/vmm/guest_memory.cc)
target_link_libraries(skiff_gen2_memory PUBLIC skiff_common)
